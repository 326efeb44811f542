// `pgferry teardown`: removes every pgferry object from the source (after saying how many
// unapplied changes it discards), never touches application tables, and asks first.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "support/fixture.hpp"

namespace pgferry::test {
namespace {

constexpr const char* kTables =
    "CREATE TABLE public.a (id int PRIMARY KEY, v text); CREATE TABLE public.\"Odd B\" (id int PRIMARY KEY)";

/// Counts every object that could belong to pgferry in a database.
std::string pgferry_objects(PgClient& db) {
  return db.scalar(
      "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry') || ' ' || "
      "(SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgferry%') || ' ' || "
      "(SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgferry') "
      "|| ' ' || (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = 'pgferry')");
}

/// Polls `sql` until it returns `want`, for up to 30 s.
bool wait_for(PgClient& db, const std::string& sql, const std::string& want) {
  for (int i = 0; i < 600; ++i) {
    if (db.scalar(sql) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

/// Sessions waiting for pgferry's setup lock (advisory lock class 'pgfr' = 1885824626, key 2).
constexpr const char* kSetupLockWaiters =
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = 1885824626 "
    "AND objid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

class Teardown : public SourceTargetTest {
 protected:
  std::string config_;
  void SetUp() override {
    SourceTargetTest::SetUp();
    on_both(kTables);
    config_ = write_config("  - public.a\n  - '\"Odd B\"'\n");
    const CliResult r = pgferry("setup", config_);
    ASSERT_EQ(r.exit_code, 0) << r.all();
    source().exec("INSERT INTO a VALUES (1, 'x'), (2, 'y'); INSERT INTO \"Odd B\" VALUES (1)");
  }
};

TEST_F(Teardown, RemovesEveryPgferryObjectAndReportsDiscardedChanges) {
  const CliResult r = pgferry("teardown", config_, {"--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("the journal holds 3 unapplied change(s)"), std::string::npos) << r.all();
  EXPECT_NE(r.out.find("public.\"Odd B\""), std::string::npos) << r.all();
  EXPECT_NE(r.out.find("\n  public.a: 2\n"), std::string::npos) << r.all();
  EXPECT_NE(r.out.find("teardown complete: application tables were not touched"), std::string::npos) << r.all();
  PgClient src = source();
  EXPECT_EQ(pgferry_objects(src), "0 0 0 0");
  // Application tables and their rows are untouched, and writes keep working.
  EXPECT_EQ(src.scalar("SELECT string_agg(id || v, ',' ORDER BY id) FROM a"), "1x,2y");
  src.exec("INSERT INTO a VALUES (3, 'z'); UPDATE \"Odd B\" SET id = 2; TRUNCATE a");
  // The target keeps its pgferry schema unless asked.
  PgClient tgt = target();
  EXPECT_EQ(tgt.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "1");
}

TEST_F(Teardown, IncludeTargetRemovesTheTargetSchemaToo) {
  const CliResult r = pgferry("teardown", config_, {"--yes", "--include-target"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  PgClient tgt = target();
  EXPECT_EQ(pgferry_objects(tgt), "0 0 0 0");
  EXPECT_EQ(tgt.scalar("SELECT count(*) FROM pg_class WHERE relname IN ('a', 'Odd B') AND relkind = 'r'"), "2");
}

TEST_F(Teardown, RefusesWithoutConfirmationAndChangesNothing) {
  PgClient src = source();
  const std::string before = pgferry_objects(src);
  const CliResult r = pgferry("teardown", config_);
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.err.find("--yes"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("discarding 3 unapplied change(s)"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("nothing was removed"), std::string::npos) << r.all();
  EXPECT_EQ(pgferry_objects(src), before);
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "3");
  // Nor with --include-target: neither side is touched.
  PgClient tgt = target();
  const std::string target_before = pgferry_objects(tgt);
  const CliResult both = pgferry("teardown", config_, {"--include-target"});
  EXPECT_EQ(both.exit_code, 2) << both.all();
  EXPECT_NE(both.err.find("sync_errors history included"), std::string::npos) << both.all();
  EXPECT_EQ(pgferry_objects(src), before);
  EXPECT_EQ(pgferry_objects(tgt), target_before);
  EXPECT_EQ(tgt.scalar("SELECT count(*) FROM pgferry.table_state"), "2");
}

TEST_F(Teardown, IncludeTargetLaterRemovesWhatASourceOnlyTeardownLeft) {
  ASSERT_EQ(pgferry("teardown", config_, {"--yes"}).exit_code, 0);
  PgClient tgt = target();
  ASSERT_EQ(tgt.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "1");
  const CliResult r = pgferry("teardown", config_, {"--yes", "--include-target"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("target: dropped schema pgferry"), std::string::npos) << r.all();
  EXPECT_EQ(r.out.find("source: dropped"), std::string::npos) << r.all();
  EXPECT_EQ(pgferry_objects(tgt), "0 0 0 0");
}

TEST_F(Teardown, WaitsOnlyLockTimeoutForARunningSetup) {
  PgClient other = source();
  other.scalar("SELECT pg_advisory_lock(1885824626, 2)::text");
  const CliResult r = pgferry("teardown", config_, {"--yes", "--lock-timeout", "1s"});
  other.scalar("SELECT pg_advisory_unlock(1885824626, 2)::text");
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("another pgferry setup or teardown is working on this database"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("--lock-timeout longer than 1s"), std::string::npos) << r.all();
  PgClient src = source();
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "3");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgferry%'"), "8");
}

TEST_F(Teardown, ASetupQueuedBehindATeardownInstallsAfreshAfterIt) {
  PgClient holder = source();
  holder.scalar("SELECT pg_advisory_lock(1885824626, 2)::text");
  auto teardown = std::async(std::launch::async, [this] {
    return pgferry("teardown", config_, {"--yes", "--lock-timeout", "60s"});
  });
  EXPECT_TRUE(wait_for(holder, kSetupLockWaiters, "1"));
  auto setup = std::async(std::launch::async, [this] { return pgferry("setup", config_, {"--lock-timeout", "60s"}); });
  EXPECT_TRUE(wait_for(holder, kSetupLockWaiters, "2"));
  holder.scalar("SELECT pg_advisory_unlock(1885824626, 2)::text");
  const CliResult t = teardown.get();
  const CliResult s = setup.get();
  ASSERT_EQ(t.exit_code, 0) << t.all();
  ASSERT_EQ(s.exit_code, 0) << s.all();
  EXPECT_NE(s.out.find("source: pgferry schema at version 4 (applied 4 migration(s))"), std::string::npos) << s.all();
  PgClient src = source();
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "0");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgferry%'"), "8");
  EXPECT_EQ(pgferry("check", config_).exit_code, 0);
}

TEST_F(Teardown, TwoTeardownsAtOnceBothSucceed) {
  PgClient holder = source();
  holder.scalar("SELECT pg_advisory_lock(1885824626, 2)::text");
  auto run = [this] { return pgferry("teardown", config_, {"--yes", "--lock-timeout", "60s"}); };
  auto first = std::async(std::launch::async, run);
  auto second = std::async(std::launch::async, run);
  EXPECT_TRUE(wait_for(holder, kSetupLockWaiters, "2"));
  holder.scalar("SELECT pg_advisory_unlock(1885824626, 2)::text");
  const CliResult r1 = first.get();
  const CliResult r2 = second.get();
  EXPECT_EQ(r1.exit_code, 0) << r1.all();
  EXPECT_EQ(r2.exit_code, 0) << r2.all();
  PgClient src = source();
  EXPECT_EQ(pgferry_objects(src), "0 0 0 0");
}

TEST_F(Teardown, RemovesTriggersOfTablesNoLongerConfigured) {
  // A table dropped from the config (without a setup run since) still loses its trigger.
  const std::string only_a = write_config("  - public.a\n");
  const CliResult r = pgferry("teardown", only_a, {"--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  PgClient src = source();
  EXPECT_EQ(pgferry_objects(src), "0 0 0 0");
}

TEST_F(Teardown, IsHarmlessTwiceAndSetupWorksAgainAfterwards) {
  ASSERT_EQ(pgferry("teardown", config_, {"--yes"}).exit_code, 0);
  const CliResult again = pgferry("teardown", config_, {"--yes"});
  EXPECT_EQ(again.exit_code, 0) << again.all();
  EXPECT_NE(again.out.find("nothing to remove"), std::string::npos) << again.all();
  const CliResult setup = pgferry("setup", config_);
  ASSERT_EQ(setup.exit_code, 0) << setup.all();
  source().exec("INSERT INTO a VALUES (9, 'new')");
  EXPECT_EQ(source().scalar("SELECT count(*) FROM pgferry.journal"), "1");
  EXPECT_EQ(pgferry("check", config_).exit_code, 0);
}

TEST_F(Teardown, DropsEveryTriggerThatCallsAPgferryFunctionAndLeavesTheTargetAlone) {
  PgClient src = source();
  // A trigger someone attached by hand to a table pgferry was never told about.
  src.exec(
      "CREATE TABLE public.other (id int PRIMARY KEY); CREATE TRIGGER handmade AFTER INSERT ON public.other "
      "FOR EACH ROW EXECUTE FUNCTION " +
      src.scalar("SELECT function_name FROM pgferry.captured_table WHERE source_table = '\"public\".\"a\"'") + "()");
  PgClient tgt = target();
  const std::string target_before = tgt.scalar(
                                        "SELECT string_agg(table_state::text, ';' ORDER BY source_table) "
                                        "FROM pgferry.table_state") +
                                    tgt.scalar(
                                        "SELECT string_agg(version::text || applied_at::text, ';') "
                                        "FROM pgferry.schema_version");
  const CliResult r = pgferry("teardown", config_, {"--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("source: dropped trigger handmade on public.other"), std::string::npos) << r.all();
  EXPECT_NE(r.out.find("3 unapplied change(s) discarded"), std::string::npos) << r.all();
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
                       "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgferry'"),
            "0");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"), "0");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_class WHERE relkind = 'S'"), "0");
  src.exec("INSERT INTO public.other VALUES (1)");
  EXPECT_EQ(tgt.scalar("SELECT string_agg(table_state::text, ';' ORDER BY source_table) FROM pgferry.table_state") +
                tgt.scalar("SELECT string_agg(version::text || applied_at::text, ';') FROM pgferry.schema_version"),
            target_before);
}

class TeardownWithoutSetup : public SourceTargetTest {};

TEST_F(TeardownWithoutSetup, HasNothingToDoAndCreatesNothing) {
  on_both(kTables);
  const std::string config = write_config("  - public.a\n");
  for (const bool include_target : {false, true}) {
    std::vector<std::string> args{"--yes"};
    if (include_target) args.emplace_back("--include-target");
    const CliResult r = pgferry("teardown", config, args);
    EXPECT_EQ(r.exit_code, 0) << r.all();
    EXPECT_NE(r.out.find("pgferry is not installed: nothing to remove"), std::string::npos) << r.all();
  }
  // Without --yes too: there is nothing to confirm.
  const CliResult unconfirmed = pgferry("teardown", config);
  EXPECT_EQ(unconfirmed.exit_code, 0) << unconfirmed.all();
  PgClient src = source();
  PgClient tgt = target();
  EXPECT_EQ(pgferry_objects(src), "0 0 0 0");
  EXPECT_EQ(pgferry_objects(tgt), "0 0 0 0");
}

TEST_F(Teardown, GivesUpOnALockInsteadOfBlockingWriters) {
  // A long application transaction holds a lock on a captured table. DROP TRIGGER queued behind
  // it would block every new writer of the table; teardown waits only --lock-timeout, then rolls
  // back and says why.
  PgClient app = source();
  app.exec("BEGIN; UPDATE a SET v = 'busy' WHERE id = 1");
  const CliResult r = pgferry("teardown", config_, {"--yes", "--lock-timeout", "1s"});
  app.exec("ROLLBACK");
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("a long-running transaction holds a lock"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("nothing was removed"), std::string::npos) << r.all();
  EXPECT_EQ(r.out.find("dropped trigger"), std::string::npos) << r.all();
  PgClient src = source();
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "3");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgferry%'"), "8");
  // Once the transaction is gone, teardown goes through.
  EXPECT_EQ(pgferry("teardown", config_, {"--yes"}).exit_code, 0);
}

class TeardownOwnSetup : public SourceTargetTest {};

TEST_F(TeardownOwnSetup, RemovesCaptureFromAPartitionedTable) {
  on_both(
      "CREATE TABLE public.p (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k); "
      "CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM (0) TO (100)");
  const std::string config = write_config("  - public.p\n");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  PgClient src = source();
  src.exec("INSERT INTO p VALUES (1, 1)");
  const CliResult r = pgferry("teardown", config, {"--yes"});
  EXPECT_EQ(r.exit_code, 0) << r.all();
  EXPECT_EQ(pgferry_objects(src), "0 0 0 0");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM p"), "1");
}

TEST_F(TeardownOwnSetup, AMemberOfTheTableOwnerCanTearDown) {
  // DROP TRIGGER is reserved to the table's owner; check and setup require membership in the
  // owner role (see Setup.TheSourceRoleMustBelongToTheTableOwner), so teardown always works.
  on_both(kTables);
  for (const auto& [conninfo, grants] :
       {std::pair{source_conninfo(),
                  std::string("DO $$ BEGIN CREATE ROLE teardown_app_owner; EXCEPTION WHEN duplicate_object THEN NULL; "
                              "END $$; ALTER TABLE public.a OWNER TO teardown_app_owner; GRANT teardown_app_owner TO "
                              "teardown_member")},
        {target_conninfo(), std::string("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON public.a TO "
                                        "teardown_member")}}) {
    PgClient db(conninfo);
    db.exec("DO $$ BEGIN CREATE ROLE teardown_member LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    db.exec("GRANT CREATE ON DATABASE \"" + db_ + "\" TO teardown_member; " + grants);
  }
  const std::string config =
      dir_.write("role.yaml", "source: \"" + source_conninfo("teardown_member") + "\"\ntarget: \"" +
                                  target_conninfo("teardown_member") + "\"\ntables:\n  - public.a\n");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  ASSERT_EQ(pgferry("check", config).exit_code, 0);
  const CliResult r = pgferry("teardown", config, {"--yes", "--include-target"});
  EXPECT_EQ(r.exit_code, 0) << r.all();
  PgClient src = source();
  EXPECT_EQ(pgferry_objects(src), "0 0 0 0");
}

}  // namespace
}  // namespace pgferry::test
