// `pgferry setup` against real servers: what it installs, that a second run changes nothing,
// upgrades, reconfiguration, concurrency, and that a failed run leaves nothing half-done.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "support/fixture.hpp"

namespace pgferry::test {
namespace {

constexpr const char* kTables =
    "CREATE TABLE public.a (id int PRIMARY KEY, v text, status text); "
    "CREATE TABLE public.b (id int PRIMARY KEY, v text)";

/// Everything pgferry owns in a database, with identities (oids) and definitions, as one string.
std::string catalog_snapshot(PgClient& db) {
  std::string out;
  const char* queries[] = {
      "SELECT string_agg(c.oid::text || ' ' || c.relname || ' ' || coalesce(array_to_string(c.reloptions, ','), ''), "
      "'; ' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = 'pgferry'",
      "SELECT string_agg(p.oid::text || ' ' || p.proname || ' ' || md5(p.prosrc), '; ' ORDER BY p.proname) "
      "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgferry'",
      "SELECT string_agg(t.oid::text || ' ' || t.tgname || ' ' || t.tgrelid::regclass::text, '; ' ORDER BY t.oid) "
      "FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace "
      "WHERE n.nspname = 'pgferry'",
      "SELECT string_agg(version || ' ' || applied_at::text, '; ' ORDER BY version) FROM pgferry.schema_version",
  };
  for (const char* q : queries) out += db.scalar(q) + "\n";
  return out;
}

std::vector<std::string> triggers_on(PgClient& db, const std::string& table) {
  std::vector<std::string> out;
  for (const auto& row : db.query("SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal "
                                  "ORDER BY tgname",
                                  {table})) {
    out.push_back(*row[0]);
  }
  return out;
}

class Setup : public SourceTargetTest {};

TEST_F(Setup, InstallsCaptureOnTheSourceAndStateOnTheTarget) {
  on_both(kTables);
  const CliResult r = pgferry("setup", write_config("  - public.a\n"));
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("setup complete: 1 table(s) captured"), std::string::npos) << r.all();
  PgClient src = source();
  PgClient tgt = target();
  EXPECT_EQ(src.scalar("SELECT max(version) FROM pgferry.schema_version"), "2");
  EXPECT_EQ(src.scalar("SELECT to_regclass('pgferry.journal') IS NOT NULL"), "t");
  EXPECT_EQ(triggers_on(src, "public.a"), (std::vector<std::string>{"pgferry_capture", "pgferry_capture_truncate"}));
  EXPECT_TRUE(triggers_on(src, "public.b").empty());
  EXPECT_EQ(
      src.scalar("SELECT source_table || ' ' || (relid = 'public.a'::regclass)::text FROM pgferry.captured_table"),
      "\"public\".\"a\" true");
  EXPECT_EQ(tgt.scalar("SELECT max(version) FROM pgferry.schema_version"), "1");
  EXPECT_EQ(tgt.scalar("SELECT to_regclass('pgferry.sync_errors') IS NOT NULL"), "t");
  EXPECT_EQ(tgt.scalar("SELECT source_table || ' ' || target_table || ' ' || status FROM pgferry.table_state"),
            "\"public\".\"a\" \"public\".\"a\" pending");
  // No application table on the target was touched.
  EXPECT_TRUE(triggers_on(tgt, "public.a").empty());
}

TEST_F(Setup, RunningItTwiceChangesNothing) {
  on_both(kTables);
  const std::string config = write_config("  - public.a\n  - name: public.b\n    where: \"v <> 'x'\"\n");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  PgClient src = source();
  PgClient tgt = target();
  const std::string src_before =
      catalog_snapshot(src) + src.scalar("SELECT string_agg(captured_table::text, ';') FROM pgferry.captured_table");
  const std::string tgt_before =
      catalog_snapshot(tgt) + tgt.scalar("SELECT string_agg(table_state::text, ';') FROM pgferry.table_state");
  const CliResult again = pgferry("setup", config);
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_NE(again.out.find("nothing to change"), std::string::npos) << again.all();
  EXPECT_EQ(
      catalog_snapshot(src) + src.scalar("SELECT string_agg(captured_table::text, ';') FROM pgferry.captured_table"),
      src_before);
  EXPECT_EQ(catalog_snapshot(tgt) + tgt.scalar("SELECT string_agg(table_state::text, ';') FROM pgferry.table_state"),
            tgt_before);
}

TEST_F(Setup, UpgradeAppliesOnlyTheNewSteps) {
  on_both(kTables);
  const std::string config = write_config("  - public.a\n");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  PgClient src = source();
  src.exec("INSERT INTO a VALUES (1, 'kept', 's')");
  // Make the source look like a version-1 install.
  src.exec(
      "DELETE FROM pgferry.schema_version WHERE version = 2; ALTER TABLE pgferry.journal RESET "
      "(autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor, "
      "autovacuum_vacuum_insert_threshold, autovacuum_analyze_scale_factor, autovacuum_analyze_threshold, "
      "autovacuum_vacuum_cost_delay)");
  ASSERT_EQ(
      src.scalar(
          "SELECT coalesce(array_length(reloptions, 1), 0) FROM pg_class WHERE oid = 'pgferry.journal'::regclass"),
      "0");
  const std::string v1 = src.scalar("SELECT applied_at::text FROM pgferry.schema_version WHERE version = 1");
  const CliResult r = pgferry("setup", config);
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("source: pgferry schema at version 2 (applied 1 migration(s))"), std::string::npos) << r.all();
  EXPECT_EQ(src.scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM pgferry.schema_version"), "1,2");
  EXPECT_EQ(src.scalar("SELECT applied_at::text FROM pgferry.schema_version WHERE version = 1"), v1);
  EXPECT_NE(
      src.scalar(
          "SELECT coalesce(array_length(reloptions, 1), 0) FROM pg_class WHERE oid = 'pgferry.journal'::regclass"),
      "0");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "1");
}

TEST_F(Setup, RemovesCaptureFromTablesNoLongerConfigured) {
  on_both(kTables);
  ASSERT_EQ(pgferry("setup", write_config("  - public.a\n  - public.b\n")).exit_code, 0);
  PgClient src = source();
  src.exec("INSERT INTO a VALUES (1, 'x', 's'); INSERT INTO b VALUES (1, 'y')");
  const std::string a_trigger =
      src.scalar("SELECT oid FROM pg_trigger WHERE tgrelid = 'public.a'::regclass AND tgname = 'pgferry_capture'");
  const CliResult r = pgferry("setup", write_config("  - public.a\n"));
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("target: public.b is no longer configured: forgot its state"), std::string::npos) << r.all();
  EXPECT_NE(r.out.find("source: public.b is no longer configured: removing its capture and 1 unapplied journal row(s)"),
            std::string::npos)
      << r.all();
  EXPECT_TRUE(triggers_on(src, "public.b").empty());
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                       "WHERE n.nspname = 'pgferry' AND p.proname LIKE 'capture_%'"),
            "1");
  EXPECT_EQ(src.scalar("SELECT string_agg(source_table, ',') FROM pgferry.captured_table"), "\"public\".\"a\"");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "1");
  EXPECT_EQ(
      src.scalar("SELECT oid FROM pg_trigger WHERE tgrelid = 'public.a'::regclass AND tgname = 'pgferry_capture'"),
      a_trigger);
  EXPECT_EQ(target().scalar("SELECT string_agg(source_table, ',') FROM pgferry.table_state"), "\"public\".\"a\"");
  // b's writes are no longer journaled.
  src.exec("INSERT INTO b VALUES (2, 'z')");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "1");
}

TEST_F(Setup, ChangedTableConfigReinstallsItsCapture) {
  on_both(kTables);
  ASSERT_EQ(pgferry("setup", write_config("  - public.a\n")).exit_code, 0);
  PgClient src = source();
  const std::string before = src.scalar("SELECT fingerprint FROM pgferry.captured_table");
  const CliResult r =
      pgferry("setup", write_config("  - name: public.a\n    columns: [id, status]\n    where: \"status = 'on'\"\n"));
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(src.scalar("SELECT fingerprint FROM pgferry.captured_table"), before);
  src.exec("INSERT INTO a VALUES (1, 'x', 'off'), (2, 'y', 'on')");
  EXPECT_EQ(src.scalar("SELECT string_agg(new_row::text, ';') FROM pgferry.journal"), R"({"id": 2, "status": "on"})");
}

TEST_F(Setup, TruncateFalseInstallsNoTruncateTrigger) {
  on_both(kTables);
  ASSERT_EQ(pgferry("setup", write_config("  - name: public.a\n    truncate: false\n")).exit_code, 0);
  PgClient src = source();
  EXPECT_EQ(triggers_on(src, "public.a"), std::vector<std::string>{"pgferry_capture"});
}

TEST_F(Setup, ConcurrentRunsSerialiseAndAgree) {
  on_both(kTables);
  const std::string config = write_config("  - public.a\n  - public.b\n");
  auto run = [this, &config] { return pgferry("setup", config); };
  auto first = std::async(std::launch::async, run);
  auto second = std::async(std::launch::async, run);
  const CliResult r1 = first.get();
  const CliResult r2 = second.get();
  EXPECT_EQ(r1.exit_code, 0) << r1.all();
  EXPECT_EQ(r2.exit_code, 0) << r2.all();
  PgClient src = source();
  EXPECT_EQ(src.scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM pgferry.schema_version"), "1,2");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.captured_table"), "2");
  EXPECT_EQ(triggers_on(src, "public.a"), (std::vector<std::string>{"pgferry_capture", "pgferry_capture_truncate"}));
  EXPECT_EQ(triggers_on(src, "public.b"), (std::vector<std::string>{"pgferry_capture", "pgferry_capture_truncate"}));
  PgClient tgt = target();
  EXPECT_EQ(tgt.scalar("SELECT count(*) FROM pgferry.schema_version"), "1");
  EXPECT_EQ(tgt.scalar("SELECT count(*) FROM pgferry.table_state"), "2");
}

TEST_F(Setup, LockTimeoutRollsBackTheWholeSource) {
  on_both(kTables);
  PgClient blocker = source();
  blocker.exec("BEGIN; LOCK TABLE public.b IN ACCESS EXCLUSIVE MODE");
  const CliResult r = pgferry("setup", write_config("  - public.a\n  - public.b\n"), {"--lock-timeout", "1s"});
  blocker.exec("ROLLBACK");
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("lock"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("--lock-timeout"), std::string::npos) << r.all();
  PgClient src = source();
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");
  EXPECT_TRUE(triggers_on(src, "public.a").empty());
  // Nothing is left half-done: the next run succeeds from scratch.
  const CliResult again = pgferry("setup", write_config("  - public.a\n  - public.b\n"));
  EXPECT_EQ(again.exit_code, 0) << again.all();
}

TEST_F(Setup, ConfigProblemsChangeNothingAnywhere) {
  on_both(kTables);
  target().exec("ALTER TABLE public.b DROP COLUMN v");
  const CliResult r = pgferry("setup", write_config("  - public.a\n  - public.b\n"));
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.err.find("missing column(s) v"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("setup changed nothing"), std::string::npos) << r.all();
  EXPECT_EQ(source().scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");
  EXPECT_EQ(target().scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");
}

TEST_F(Setup, NeverPrintsThePassword) {
  on_both("CREATE TABLE public.a (id int PRIMARY KEY)");
  const std::string config =
      dir_.write("secret.yaml",
                 "source: \"" + source_conninfo() +
                     " password=hunter2-secret\"\ntarget: \"postgresql://postgres:hunter2-secret@127.0.0.1:" +
                     std::to_string(cluster_pair().target->port()) + "/" + db_ + "\"\ntables:\n  - public.missing\n");
  const CliResult r = pgferry("setup", config, {"--log-level", "debug"});
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.all().find("public.missing"), std::string::npos) << r.all();
  EXPECT_EQ(r.all().find("hunter2-secret"), std::string::npos) << r.all();
}

/// The versions of the migration files shipped in migrations/<side>, in order, comma-separated.
std::string shipped_versions(const std::string& side) {
  const auto dir = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "migrations" / side;
  std::vector<int> versions;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".sql") versions.push_back(std::stoi(entry.path().filename().string()));
  }
  std::sort(versions.begin(), versions.end());
  std::string out;
  for (int v : versions) out += (out.empty() ? "" : ",") + std::to_string(v);
  return out;
}

TEST_F(Setup, RecordsEveryShippedMigrationOnBothSides) {
  on_both(kTables);
  ASSERT_EQ(pgferry("setup", write_config("  - public.a\n")).exit_code, 0);
  const std::string source_versions = shipped_versions("source");
  const std::string target_versions = shipped_versions("target");
  ASSERT_FALSE(source_versions.empty());
  ASSERT_FALSE(target_versions.empty());
  const char* versions = "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgferry.schema_version";
  EXPECT_EQ(source().scalar(versions), source_versions);
  EXPECT_EQ(target().scalar(versions), target_versions);
  EXPECT_EQ(source().scalar("SELECT string_agg(name, ',' ORDER BY version) FROM pgferry.schema_version"),
            "capture,journal_autovacuum");
  EXPECT_EQ(target().scalar("SELECT string_agg(name, ',' ORDER BY version) FROM pgferry.schema_version"), "state");
}

TEST_F(Setup, UpgradeRecordsTheNewStepAndKeepsCaptureInstalled) {
  on_both(kTables);
  const std::string config = write_config("  - public.a\n");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  PgClient src = source();
  src.exec("INSERT INTO a VALUES (1, 'kept', 's')");
  const std::string v2_before = src.scalar("SELECT applied_at::text FROM pgferry.schema_version WHERE version = 2");
  const std::string capture_before =
      src.scalar("SELECT string_agg(t.oid::text, ',' ORDER BY t.oid) FROM pg_trigger t WHERE tgrelid = 'a'::regclass") +
      " " + src.scalar("SELECT installed_at::text || fingerprint FROM pgferry.captured_table");
  src.exec(
      "DELETE FROM pgferry.schema_version WHERE version = 2; ALTER TABLE pgferry.journal RESET "
      "(autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor, "
      "autovacuum_vacuum_insert_threshold, autovacuum_analyze_scale_factor, autovacuum_analyze_threshold, "
      "autovacuum_vacuum_cost_delay)");
  const CliResult r = pgferry("setup", config);
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("public.a: capture up to date"), std::string::npos) << r.all();
  EXPECT_EQ(
      src.scalar("SELECT applied_at > $1::timestamptz FROM pgferry.schema_version WHERE version = 2", {v2_before}),
      "t");
  EXPECT_EQ(src.scalar("SELECT string_agg(o, ',' ORDER BY o COLLATE \"C\") FROM pg_class, unnest(reloptions) o "
                       "WHERE oid = 'pgferry.journal'::regclass"),
            "autovacuum_analyze_scale_factor=0,autovacuum_analyze_threshold=5000,autovacuum_vacuum_cost_delay=0,"
            "autovacuum_vacuum_insert_scale_factor=0,autovacuum_vacuum_insert_threshold=50000,"
            "autovacuum_vacuum_scale_factor=0,autovacuum_vacuum_threshold=5000");
  EXPECT_EQ(
      src.scalar("SELECT string_agg(t.oid::text, ',' ORDER BY t.oid) FROM pg_trigger t WHERE tgrelid = 'a'::regclass") +
          " " + src.scalar("SELECT installed_at::text || fingerprint FROM pgferry.captured_table"),
      capture_before);
  src.exec("INSERT INTO a VALUES (2, 'new', 's')");
  EXPECT_EQ(src.scalar("SELECT string_agg(new_row->>'v', ',' ORDER BY id) FROM pgferry.journal"), "kept,new");
}

TEST_F(Setup, LockTimeoutWhileRemovingATableKeepsItsCapture) {
  on_both(kTables);
  ASSERT_EQ(pgferry("setup", write_config("  - public.a\n  - public.b\n")).exit_code, 0);
  PgClient src = source();
  src.exec("INSERT INTO b VALUES (1, 'pending')");
  const std::string before = catalog_snapshot(src);
  PgClient blocker = source();
  blocker.exec("BEGIN; LOCK TABLE public.b IN ACCESS EXCLUSIVE MODE");
  const CliResult r = pgferry("setup", write_config("  - public.a\n"), {"--lock-timeout", "1s"});
  blocker.exec("ROLLBACK");
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("lock timeout"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("retry with a longer --lock-timeout"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("setup rolled back on the source"), std::string::npos) << r.all();
  EXPECT_EQ(catalog_snapshot(src), before);
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "1");
  EXPECT_EQ(triggers_on(src, "public.b"), (std::vector<std::string>{"pgferry_capture", "pgferry_capture_truncate"}));
}

TEST_F(Setup, ForgetsATableThatWasDroppedAndRemovedFromTheConfig) {
  on_both(kTables);
  ASSERT_EQ(pgferry("setup", write_config("  - public.a\n  - public.b\n")).exit_code, 0);
  PgClient src = source();
  src.exec("INSERT INTO b VALUES (1, 'gone'); DROP TABLE public.b");
  const CliResult r = pgferry("setup", write_config("  - public.a\n"));
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("source: public.b is no longer configured: removing its capture and 1 unapplied journal row(s)"),
            std::string::npos)
      << r.all();
  EXPECT_EQ(src.scalar("SELECT string_agg(source_table, ',') FROM pgferry.captured_table"), "\"public\".\"a\"");
  EXPECT_EQ(src.scalar("SELECT string_agg(proname, ',') FROM pg_proc WHERE pronamespace = 'pgferry'::regnamespace"),
            "capture_1");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "0");
}

TEST_F(Setup, KeepsReplicationProgressUnlessTheTargetTableChanges) {
  on_both(kTables);
  target().exec("CREATE TABLE public.a2 (id int PRIMARY KEY, v text, status text)");
  const std::string config = write_config("  - public.a\n");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  PgClient tgt = target();
  tgt.exec("UPDATE pgferry.table_state SET status = 'streaming', snapshot_rows = 42, rows_applied = 7");
  const char* state = "SELECT target_table || ' ' || status || ' ' || snapshot_rows FROM pgferry.table_state";
  const CliResult again = pgferry("setup", config);
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_EQ(tgt.scalar(state), "\"public\".\"a\" streaming 42");
  // A different target table needs a fresh initial copy.
  const CliResult moved = pgferry("setup", write_config("  - name: public.a\n    target: public.a2\n"));
  ASSERT_EQ(moved.exit_code, 0) << moved.all();
  EXPECT_NE(moved.out.find("target: public.a -> public.a2: target changed, initial copy reset"), std::string::npos)
      << moved.all();
  EXPECT_EQ(tgt.scalar(state), "\"public\".\"a2\" pending 0");
}

TEST_F(Setup, TurningTruncateOffRemovesTheTruncateTrigger) {
  on_both(kTables);
  ASSERT_EQ(pgferry("setup", write_config("  - public.a\n")).exit_code, 0);
  const CliResult r = pgferry("setup", write_config("  - name: public.a\n    truncate: false\n"));
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("public.a: capture reinstalled: configuration changed"), std::string::npos) << r.all();
  PgClient src = source();
  EXPECT_EQ(triggers_on(src, "public.a"), std::vector<std::string>{"pgferry_capture"});
  src.exec("INSERT INTO a VALUES (1, 'x', 's'); TRUNCATE a");
  EXPECT_EQ(src.scalar("SELECT string_agg(op::text, ',' ORDER BY id) FROM pgferry.journal"), "I");
}

TEST_F(Setup, ZeroLockTimeoutIsRefused) {
  // PostgreSQL reads lock_timeout = 0 as "wait forever"; setup refuses it before touching anything.
  on_both(kTables);
  PgClient blocker = source();
  blocker.exec("BEGIN; LOCK TABLE public.a IN ACCESS EXCLUSIVE MODE");
  const std::string config = write_config("  - public.a\n");
  const CliResult r =
      run_pgferry({"setup", "-c", config, "--lock-timeout", "0s"}, {{"PGFERRY_LOG_FORMAT", "text"}}, 30);
  blocker.exec("ROLLBACK");
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.err.find("--lock-timeout: '0s' would make PostgreSQL wait for locks forever"), std::string::npos)
      << r.all();
  EXPECT_EQ(source().scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");
  EXPECT_EQ(target().scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");
}

TEST_F(Setup, WaitingTooLongForAnotherSetupExplainsWhatToDo) {
  on_both(kTables);
  // Another setup or teardown holds pgferry's setup lock (lock class 'pgfr', key 2) on the source.
  PgClient other = source();
  other.scalar("SELECT pg_advisory_lock(1885824626, 2)");
  const CliResult r = pgferry("setup", write_config("  - public.a\n"), {"--lock-timeout", "1s"});
  other.scalar("SELECT pg_advisory_unlock(1885824626, 2)");
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("another pgferry setup or teardown is working on this database"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("fix: wait for it to finish"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("--lock-timeout longer than 1s"), std::string::npos) << r.all();
  EXPECT_EQ(source().scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");
}

}  // namespace
}  // namespace pgferry::test
