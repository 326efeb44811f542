// `pgferry check`: exit 0 only when everything is ready; otherwise a per-table report that names
// what is wrong and how to fix it. Exit 2 for configuration problems, 1 for the rest.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "support/fixture.hpp"

namespace pgferry::test {
namespace {

class Check : public SourceTargetTest {
 protected:
  /// Runs check and asserts its exit code; returns everything it printed.
  std::string check_expecting(int exit_code, const std::string& config) const {
    const CliResult r = pgferry("check", config);
    EXPECT_EQ(r.exit_code, exit_code) << r.all();
    return r.all();
  }
};

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "missing: " << (needle) << "\nin:\n" << (haystack)

constexpr const char* kUsers = "CREATE TABLE public.users (id int PRIMARY KEY, name text, status text)";

TEST_F(Check, ReadyOnlyAfterSetup) {
  on_both(kUsers);
  const std::string config = write_config("  - public.users\n");
  const std::string before = check_expecting(1, config);
  EXPECT_CONTAINS(before, "FAIL  source: pgferry schema not installed");
  EXPECT_CONTAINS(before, "run `pgferry setup`");
  EXPECT_CONTAINS(before, "FAIL  capture not installed\n        fix: run `pgferry setup`");
  EXPECT_CONTAINS(before, "not ready");
  // check only looks: it created nothing.
  EXPECT_EQ(source().scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");
  EXPECT_EQ(target().scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  const std::string after = check_expecting(0, config);
  EXPECT_CONTAINS(after, "public.users -> public.users");
  EXPECT_CONTAINS(after, "ok    capture installed and up to date");
  EXPECT_CONTAINS(after, "ready");
  EXPECT_EQ(after.find("FAIL"), std::string::npos) << after;
}

TEST_F(Check, NoticesCaptureThatWasTamperedWith) {
  on_both(kUsers);
  const std::string config = write_config("  - public.users\n");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  source().exec("ALTER TABLE public.users DISABLE TRIGGER pgferry_capture");
  EXPECT_CONTAINS(check_expecting(1, config), "capture installed but out of date");
  source().exec(
      "ALTER TABLE public.users ENABLE TRIGGER pgferry_capture; DROP TRIGGER pgferry_capture ON public.users");
  EXPECT_CONTAINS(check_expecting(1, config), "run `pgferry setup`");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  check_expecting(0, config);
}

TEST_F(Check, TableWithoutPrimaryKey) {
  on_both("CREATE TABLE public.logs (id int, line text)");
  const std::string out = check_expecting(2, write_config("  - public.logs\n"));
  EXPECT_CONTAINS(out, "source table public.logs has no primary key");
  EXPECT_CONTAINS(out, "ALTER TABLE \"public\".\"logs\" ADD PRIMARY KEY");
}

TEST_F(Check, MissingTargetColumn) {
  source().exec(kUsers);
  target().exec("CREATE TABLE public.users (id int PRIMARY KEY, name text)");
  const std::string out = check_expecting(2, write_config("  - public.users\n"));
  EXPECT_CONTAINS(out, "target table public.users is missing column(s) status");
}

TEST_F(Check, IncompatibleColumnType) {
  source().exec("CREATE TABLE public.users (id int PRIMARY KEY, profile jsonb)");
  target().exec("CREATE TABLE public.users (id int PRIMARY KEY, profile integer)");
  const std::string out = check_expecting(2, write_config("  - public.users\n"));
  EXPECT_CONTAINS(out, "public.users.profile is jsonb but target column public.users.profile is integer");
}

TEST_F(Check, MissingTargetTable) {
  source().exec(kUsers);
  const std::string out = check_expecting(2, write_config("  - name: public.users\n    target: public.chat_users\n"));
  EXPECT_CONTAINS(out, "target table public.chat_users does not exist");
}

TEST_F(Check, BadRowFilters) {
  on_both(kUsers);
  std::string out = check_expecting(2, write_config("  - name: public.users\n    where: \"status = = 1\"\n"));
  EXPECT_CONTAINS(out, "status = = 1");
  EXPECT_CONTAINS(out, "is not valid on source table public.users");
  out = check_expecting(2, write_config("  - name: public.users\n    where: \"no_such_column > 0\"\n"));
  EXPECT_CONTAINS(out, "the row filter \"no_such_column > 0\" is not valid on source table public.users");
  EXPECT_CONTAINS(out, "column \"no_such_column\" does not exist");
  EXPECT_CONTAINS(out, "fix: write one SQL boolean expression over the table's own columns");
  // The filter must parse as one expression: a second statement is not smuggled in.
  out = check_expecting(2, write_config("  - name: public.users\n    where: \"true; DROP TABLE public.users\"\n"));
  EXPECT_CONTAINS(out, "tables[0].where: the row filter \"true; DROP TABLE public.users\" does not parse");
  EXPECT_CONTAINS(out, "a filter is one expression, not statements");
  EXPECT_EQ(source().scalar("SELECT to_regclass('public.users') IS NOT NULL"), "t");
}

TEST_F(Check, MissingPrivilegesNameTheGrant) {
  on_both(kUsers);
  for (PgCluster* cluster : {cluster_pair().source.get(), cluster_pair().target.get()}) {
    PgClient db(cluster->conninfo(db_));
    db.exec("DO $$ BEGIN CREATE ROLE weak LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    db.exec("GRANT CREATE ON DATABASE \"" + db_ + "\" TO weak; GRANT SELECT ON public.users TO weak");
  }
  const std::string config = dir_.write("weak.yaml", "source: \"" + source_conninfo("weak") + "\"\ntarget: \"" +
                                                         target_conninfo("weak") + "\"\ntables:\n  - public.users\n");
  const std::string out = check_expecting(1, config);
  EXPECT_CONTAINS(out, "the source role lacks the TRIGGER privilege on public.users");
  EXPECT_CONTAINS(out, "GRANT TRIGGER ON \"public\".\"users\" TO weak");
  EXPECT_CONTAINS(out, "the target role lacks the INSERT privilege on public.users");
  EXPECT_CONTAINS(out, "GRANT INSERT ON \"public\".\"users\" TO weak");
}

TEST_F(Check, UnreachableDatabaseIsARuntimeFailureWithoutThePassword) {
  on_both(kUsers);
  const std::string config =
      dir_.write("down.yaml",
                 "source: \"host=127.0.0.1 port=1 dbname=x user=u password=hunter2-secret connect_timeout=3\"\n"
                 "target: \"" +
                     target_conninfo() + "\"\ntables:\n  - public.users\n");
  const std::string out = check_expecting(1, config);
  EXPECT_CONTAINS(out, "source");
  EXPECT_CONTAINS(out, "127.0.0.1");
  EXPECT_EQ(out.find("hunter2-secret"), std::string::npos) << out;
}

TEST_F(Check, ConfigurationErrorsExitTwo) {
  EXPECT_CONTAINS(check_expecting(2, write_config("  - public.users\n", "sweeep: {interval: 5s}\n")), "sweeep");
  EXPECT_CONTAINS(check_expecting(2, dir_.path() + "/missing.yaml"), "missing.yaml");
  EXPECT_CONTAINS(check_expecting(2, dir_.write("bad.yaml", "source: [unclosed\n")), "bad.yaml");
}

TEST_F(Check, CommandLineUsage) {
  const CliResult none = run_pgferry({});
  EXPECT_EQ(none.exit_code, 2) << none.all();
  const CliResult unknown = run_pgferry({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.all();
  EXPECT_CONTAINS(unknown.all(), "frobnicate");
  const CliResult bad_flag = run_pgferry({"check", "--no-such-flag"});
  EXPECT_EQ(bad_flag.exit_code, 2) << bad_flag.all();
  const CliResult help = run_pgferry({"--help"});
  EXPECT_EQ(help.exit_code, 0) << help.all();
  for (const char* command : {"check", "setup", "teardown"}) EXPECT_CONTAINS(help.out, command);
  for (const auto& [command, option] : {std::pair{"check", "--config"}, std::pair{"setup", "--lock-timeout"},
                                        std::pair{"teardown", "--yes"}, std::pair{"teardown", "--include-target"}}) {
    const CliResult r = run_pgferry({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << r.all();
    EXPECT_CONTAINS(r.out, option);
  }
  for (const char* option : {"--config", "--log-level", "--log-format", "Exit codes: 0 ok, 1 runtime failure"}) {
    EXPECT_CONTAINS(help.out, option);
  }
  const CliResult version = run_pgferry({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_CONTAINS(version.out, "pgferry 0.1.0");
}

TEST_F(Check, UnreachableTargetIsNamedAndItsUriPasswordHidden) {
  on_both(kUsers);
  const std::string config = dir_.write("down.yaml", "source: \"" + source_conninfo() +
                                                         " password=hunter2-secret\"\n"
                                                         "target: \"postgresql://postgres:hunter2-secret@127.0.0.1:1/" +
                                                         db_ + "?connect_timeout=3\"\ntables:\n  - public.users\n");
  const CliResult r = pgferry("check", config);
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_CONTAINS(r.err, "target database (postgresql://postgres:****@127.0.0.1:1/");
  EXPECT_CONTAINS(r.err, "cannot connect");
  EXPECT_CONTAINS(r.err, "fix: check that the server is up and the 'target:' connection string");
  EXPECT_EQ(r.all().find("hunter2-secret"), std::string::npos) << r.all();
  EXPECT_EQ(r.out.find("ready"), std::string::npos) << r.all();
}

TEST_F(Check, UnreachableSourceShowsTheMaskedConninfoAndTheFix) {
  const std::string config =
      dir_.write("down.yaml",
                 "source: \"host=127.0.0.1 port=1 dbname=x user=u password=hunter2-secret connect_timeout=3\"\n"
                 "target: \"" +
                     target_conninfo() + "\"\ntables:\n  - public.users\n");
  const CliResult r = pgferry("check", config);
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_CONTAINS(r.err, "source database (host=127.0.0.1 port=1 dbname=x user=u password=**** connect_timeout=3)");
  EXPECT_CONTAINS(r.err, "cannot connect");
  EXPECT_CONTAINS(r.err, "fix: check that the server is up and the 'source:' connection string");
  EXPECT_EQ(r.all().find("hunter2-secret"), std::string::npos) << r.all();
}

TEST_F(Check, ConfigurationChangedSinceSetupIsOutOfDate) {
  on_both(kUsers);
  ASSERT_EQ(pgferry("setup", write_config("  - public.users\n")).exit_code, 0);
  const std::string filtered = write_config("  - name: public.users\n    where: \"status = 'on'\"\n");
  const std::string out = check_expecting(1, filtered);
  EXPECT_CONTAINS(out, "ok    row filter parses: status = 'on'");
  EXPECT_CONTAINS(out, "FAIL  capture installed but out of date (configuration changed");
  EXPECT_CONTAINS(out, "fix: run `pgferry setup`");
  ASSERT_EQ(pgferry("setup", filtered).exit_code, 0);
  EXPECT_CONTAINS(check_expecting(0, filtered), "ok    capture installed and up to date");
}

TEST_F(Check, SchemaNewerThanThisBinaryIsRefused) {
  on_both(kUsers);
  const std::string config = write_config("  - public.users\n");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  target().exec("INSERT INTO pgferry.schema_version (version, name, pgferry_version) VALUES (99, 'future', '9.9.9')");
  EXPECT_CONTAINS(check_expecting(1, config),
                  "target: pgferry schema is version 99, newer than this pgferry knows (4)");
  // setup refuses too, and leaves the source as it was.
  const CliResult r = pgferry("setup", config);
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_CONTAINS(r.err, "version 99");
  EXPECT_CONTAINS(r.err, "run a pgferry at least as new as the one that last ran setup");
  EXPECT_EQ(source().scalar("SELECT count(*) FROM pgferry.captured_table"), "1");
}

/// Creates login role `role` on both clusters (once: roles are cluster-wide) and runs the given
/// SQL in this test's source and target databases.
void create_role(const std::string& role, const std::string& source_conninfo, const std::string& source_sql,
                 const std::string& target_conninfo, const std::string& target_sql) {
  for (const auto& [conninfo, sql] : {std::pair{source_conninfo, source_sql}, {target_conninfo, target_sql}}) {
    PgClient db(conninfo);
    db.exec("DO $$ BEGIN CREATE ROLE " + role + " LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    if (!sql.empty()) db.exec(sql);
  }
}

TEST_F(Check, TruncatePrivilegeIsNeededOnlyWhenTruncatesAreReplicated) {
  on_both(kUsers);
  create_role("check_no_truncate", source_conninfo(), "ALTER TABLE public.users OWNER TO check_no_truncate",
              target_conninfo(), "GRANT SELECT, INSERT, UPDATE, DELETE ON public.users TO check_no_truncate");
  auto config = [&](const std::string& tables) {
    return dir_.write("role.yaml", "source: \"" + source_conninfo("check_no_truncate") + "\"\ntarget: \"" +
                                       target_conninfo("check_no_truncate") + "\"\ntables:\n" + tables);
  };
  std::string out = check_expecting(1, config("  - public.users\n"));
  EXPECT_CONTAINS(out, "FAIL  the target role lacks the TRUNCATE privilege on public.users");
  EXPECT_CONTAINS(out, "fix: GRANT TRUNCATE ON \"public\".\"users\" TO check_no_truncate");
  out = check_expecting(1, config("  - name: public.users\n    truncate: false\n"));
  EXPECT_EQ(out.find("TRUNCATE"), std::string::npos) << out;
  EXPECT_CONTAINS(out, "ok    privileges sufficient on both sides");
  // Not ready only because setup has not run.
  EXPECT_CONTAINS(out, "FAIL  capture not installed");
}

TEST_F(Check, ConfigurationProblemsOutrankEverythingElse) {
  // One table misses a privilege (exit 1), another a target column (exit 2): the result is 2,
  // and both are reported.
  on_both(kUsers);
  source().exec("CREATE TABLE public.orders (id int PRIMARY KEY, total numeric)");
  target().exec("CREATE TABLE public.orders (id int PRIMARY KEY)");
  create_role("check_mixed", source_conninfo(), "GRANT SELECT, TRIGGER ON public.users, public.orders TO check_mixed",
              target_conninfo(), "GRANT SELECT, INSERT, UPDATE, DELETE ON public.users, public.orders TO check_mixed");
  const std::string config = dir_.write("mixed.yaml", "source: \"" + source_conninfo("check_mixed") + "\"\ntarget: \"" +
                                                          target_conninfo("check_mixed") +
                                                          "\"\ntables:\n  - public.users\n  - public.orders\n");
  const std::string out = check_expecting(2, config);
  EXPECT_CONTAINS(out, "FAIL  the target role lacks the TRUNCATE privilege on public.users");
  EXPECT_CONTAINS(out, "target table public.orders is missing column(s) total");
  EXPECT_CONTAINS(out, "not ready");
}

TEST_F(Check, ReportsAMissingCreatePrivilegeBeforeTheFirstSetup) {
  on_both(kUsers);
  create_role("check_no_create", source_conninfo(), "ALTER TABLE public.users OWNER TO check_no_create",
              target_conninfo(), "GRANT ALL ON public.users TO check_no_create");
  const std::string config =
      dir_.write("nocreate.yaml", "source: \"" + source_conninfo("check_no_create") + "\"\ntarget: \"" +
                                      target_conninfo("check_no_create") + "\"\ntables:\n  - public.users\n");
  const CliResult setup = pgferry("setup", config);
  EXPECT_EQ(setup.exit_code, 1) << setup.all();
  EXPECT_CONTAINS(setup.err, "this role may not create schema pgferry");
  const std::string out = check_expecting(1, config);
  EXPECT_CONTAINS(out, "CREATE");
  EXPECT_CONTAINS(out, "GRANT CREATE ON DATABASE " + db_ + " TO check_no_create");
}

}  // namespace
}  // namespace pgferry::test
