// `pgferry setup` against real servers: what it installs, that a second run changes nothing,
// upgrades, reconfiguration, concurrency, and that a failed run leaves nothing half-done.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
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

// The triggers capture puts on an ordinary table: UPDATE and DELETE per row, INSERT per statement
// (and its guard).
const std::vector<std::string> kCaptureTriggers{"pgferry_capture", "pgferry_capture_guard", "pgferry_capture_insert",
                                                "pgferry_capture_truncate"};
const std::vector<std::string> kCaptureTriggersWithoutTruncate{"pgferry_capture", "pgferry_capture_guard",
                                                               "pgferry_capture_insert"};

std::vector<std::string> triggers_on(PgClient& db, const std::string& table) {
  std::vector<std::string> out;
  for (const auto& row : db.query("SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal "
                                  "ORDER BY tgname",
                                  {table})) {
    out.push_back(*row[0]);
  }
  return out;
}

/// Polls `sql` until it returns `want`, for up to 30 s.
bool wait_for(PgClient& db, const std::string& sql, const std::string& want) {
  for (int i = 0; i < 600; ++i) {
    if (db.scalar(sql) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

/// pgferry's setup lock: advisory lock class 'pgfr' (1885824626), key 2.
constexpr const char* kSetupLockWaiters =
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = 1885824626 "
    "AND objid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

class Setup : public SourceTargetTest {
 protected:
  /// Creates login role `role` on both clusters (roles are cluster-wide, so only once) and runs
  /// `source_sql` / `target_sql` in this test's databases.
  void create_role(const std::string& role, const std::string& source_sql, const std::string& target_sql,
                   const std::string& options = "") const {
    for (const auto& [conninfo, sql] : {std::pair{source_conninfo(), source_sql}, {target_conninfo(), target_sql}}) {
      PgClient db(conninfo);
      db.exec("DO $$ BEGIN CREATE ROLE " + role + " LOGIN " + options +
              "; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
      if (!sql.empty()) db.exec(sql);
    }
  }
  /// A config file connecting as `role` to both databases.
  std::string config_as(const std::string& role, const std::string& tables) const {
    return dir_.write(role + ".yaml", "source: \"" + source_conninfo(role) + "\"\ntarget: \"" + target_conninfo(role) +
                                          "\"\ntables:\n" + tables);
  }
};

TEST_F(Setup, InstallsCaptureOnTheSourceAndStateOnTheTarget) {
  on_both(kTables);
  const CliResult r = pgferry("setup", write_config("  - public.a\n"));
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("setup complete: 1 table(s) captured"), std::string::npos) << r.all();
  PgClient src = source();
  PgClient tgt = target();
  EXPECT_EQ(src.scalar("SELECT max(version) FROM pgferry.schema_version"), "4");
  EXPECT_EQ(src.scalar("SELECT to_regclass('pgferry.journal') IS NOT NULL"), "t");
  EXPECT_EQ(triggers_on(src, "public.a"), kCaptureTriggers);
  EXPECT_TRUE(triggers_on(src, "public.b").empty());
  EXPECT_EQ(
      src.scalar("SELECT source_table || ' ' || (relid = 'public.a'::regclass)::text FROM pgferry.captured_table"),
      "\"public\".\"a\" true");
  EXPECT_EQ(tgt.scalar("SELECT max(version) FROM pgferry.schema_version"), "4");
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
      "DELETE FROM pgferry.schema_version WHERE version >= 2; DROP INDEX pgferry.journal_xid_id_idx; "
      "CREATE INDEX journal_xid_idx ON pgferry.journal (xid); ALTER TABLE pgferry.journal RESET "
      "(autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor, "
      "autovacuum_vacuum_insert_threshold, autovacuum_analyze_scale_factor, autovacuum_analyze_threshold, "
      "autovacuum_vacuum_cost_delay); "
      "ALTER TABLE pgferry.journal ADD CONSTRAINT journal_op_check CHECK (op IN ('I', 'U', 'D', 'T'))");
  ASSERT_EQ(
      src.scalar(
          "SELECT coalesce(array_length(reloptions, 1), 0) FROM pg_class WHERE oid = 'pgferry.journal'::regclass"),
      "0");
  const std::string v1 = src.scalar("SELECT applied_at::text FROM pgferry.schema_version WHERE version = 1");
  const CliResult r = pgferry("setup", config);
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("source: pgferry schema at version 4 (applied 3 migration(s))"), std::string::npos) << r.all();
  EXPECT_EQ(src.scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM pgferry.schema_version"),
            "1,2,3,4");
  // Version 4 dropped the journal's CHECK on op.
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_constraint WHERE conrelid = 'pgferry.journal'::regclass "
                       "AND contype = 'c'"),
            "0");
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
  EXPECT_EQ(triggers_on(src, "public.a"), kCaptureTriggersWithoutTruncate);
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
  EXPECT_EQ(src.scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM pgferry.schema_version"),
            "1,2,3,4");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.captured_table"), "2");
  EXPECT_EQ(triggers_on(src, "public.a"), kCaptureTriggers);
  EXPECT_EQ(triggers_on(src, "public.b"), kCaptureTriggers);
  PgClient tgt = target();
  EXPECT_EQ(tgt.scalar("SELECT count(*) FROM pgferry.schema_version"), "4");
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
            "capture,journal_autovacuum,journal_xid_id_index,journal_no_op_check");
  EXPECT_EQ(target().scalar("SELECT string_agg(name, ',' ORDER BY version) FROM pgferry.schema_version"),
            "state,snapshot_visibility,resilience,applied_batch");
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
      "DELETE FROM pgferry.schema_version WHERE version >= 2; DROP INDEX pgferry.journal_xid_id_idx; "
      "CREATE INDEX journal_xid_idx ON pgferry.journal (xid); ALTER TABLE pgferry.journal RESET "
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
  EXPECT_EQ(triggers_on(src, "public.b"), kCaptureTriggers);
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
  EXPECT_EQ(triggers_on(src, "public.a"), kCaptureTriggersWithoutTruncate);
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

TEST_F(Setup, RegistersEveryConfiguredTableOnBothSides) {
  on_both(kTables);
  const CliResult r = pgferry("setup", write_config("  - public.a\n  - name: public.b\n    truncate: false\n"));
  ASSERT_EQ(r.exit_code, 0) << r.all();
  for (const char* line :
       {"target: public.a -> public.a: registered (pending initial copy)",
        "target: public.b -> public.b: registered (pending initial copy)", "source: public.a: capture installed",
        "source: public.b: capture installed", "setup complete: 2 table(s) captured\n"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << "missing: " << line << "\n" << r.all();
  }
  PgClient src = source();
  // Each trigger is enabled and calls its table's own SECURITY DEFINER function in schema pgferry.
  EXPECT_EQ(
      src.scalar("SELECT string_agg(t.tgrelid::regclass || ':' || t.tgname || ':' || t.tgfoid::regprocedure || "
                 "':' || t.tgenabled::text || ':' || p.prosecdef, ',' ORDER BY t.tgrelid::regclass::text, t.tgname) "
                 "FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal"),
      "a:pgferry_capture:pgferry.capture_1():O:true,a:pgferry_capture_guard:pgferry.capture_1():O:true,"
      "a:pgferry_capture_insert:pgferry.capture_1():O:true,a:pgferry_capture_truncate:pgferry.capture_1():O:true,"
      "b:pgferry_capture:pgferry.capture_2():O:true,b:pgferry_capture_guard:pgferry.capture_2():O:true,"
      "b:pgferry_capture_insert:pgferry.capture_2():O:true");
  EXPECT_EQ(src.scalar("SELECT string_agg(id || ' ' || source_table || ' ' || relid::regclass || ' ' || function_name, "
                       "';' ORDER BY id) FROM pgferry.captured_table"),
            R"(1 "public"."a" a pgferry."capture_1";2 "public"."b" b pgferry."capture_2")");
  EXPECT_EQ(src.scalar("SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class "
                       "WHERE relnamespace = 'pgferry'::regnamespace AND relkind IN ('r', 'S')"),
            "captured_table:r,captured_table_id_seq:S,doorbell:S,journal:r,journal_id_seq:S,schema_version:r");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "0");
  PgClient tgt = target();
  EXPECT_EQ(tgt.scalar("SELECT string_agg(source_table || '>' || target_table || ':' || status || ':' || "
                       "snapshot_rows || ':' || rows_applied, ',' ORDER BY source_table) FROM pgferry.table_state"),
            "\"public\".\"a\">\"public\".\"a\":pending:0:0,\"public\".\"b\">\"public\".\"b\":pending:0:0");
  EXPECT_EQ(tgt.scalar("SELECT count(*) FROM pgferry.sync_errors"), "0");
  // Capture objects live only on the source; state only on the target.
  EXPECT_EQ(
      tgt.scalar("SELECT to_regclass('pgferry.journal') IS NULL AND to_regclass('pgferry.captured_table') IS NULL"),
      "t");
  EXPECT_EQ(
      src.scalar("SELECT to_regclass('pgferry.table_state') IS NULL AND to_regclass('pgferry.sync_errors') IS NULL"),
      "t");
}

TEST_F(Setup, AChangedFilterReplacesTheFunctionBodyAndKeepsItsName) {
  on_both(kTables);
  ASSERT_EQ(pgferry("setup", write_config("  - public.a\n  - public.b\n")).exit_code, 0);
  PgClient src = source();
  const char* body = "SELECT md5(prosrc) FROM pg_proc WHERE oid = 'pgferry.capture_1()'::regprocedure";
  const char* b_state =
      "SELECT string_agg(t.oid::text, ',' ORDER BY t.oid) || md5(p.prosrc) FROM pg_trigger t "
      "JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = 'b'::regclass GROUP BY p.prosrc";
  const std::string body_before = src.scalar(body);
  const std::string b_before = src.scalar(b_state) + src.scalar(
                                                         "SELECT installed_at::text FROM pgferry.captured_table "
                                                         "WHERE id = 2");
  const CliResult r =
      pgferry("setup", write_config("  - name: public.a\n    where: \"status = 'on'\"\n  - public.b\n"));
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("source: public.a: capture reinstalled: configuration changed (table id 1)"), std::string::npos)
      << r.all();
  EXPECT_NE(r.out.find("source: public.b: capture up to date"), std::string::npos) << r.all();
  EXPECT_NE(src.scalar(body), body_before);
  EXPECT_NE(
      src.scalar("SELECT prosrc FROM pg_proc WHERE oid = 'pgferry.capture_1()'::regprocedure").find("status = 'on'"),
      std::string::npos);
  EXPECT_EQ(src.scalar(b_state) + src.scalar("SELECT installed_at::text FROM pgferry.captured_table WHERE id = 2"),
            b_before);
  // An update that moves a row into the filter journals an insert; out of it, a delete.
  src.exec("INSERT INTO a VALUES (1, 'x', 'off'); UPDATE a SET status = 'on'; UPDATE a SET status = 'off'");
  EXPECT_EQ(src.scalar("SELECT string_agg(op::text, ',' ORDER BY id) FROM pgferry.journal"), "I,D");
}

TEST_F(Setup, ASecondSetupWaitsForTheFirstAndFindsNothingToDo) {
  on_both(kTables);
  const std::string config = write_config("  - public.a\n  - public.b\n");
  // Hold the source's setup lock so that both runs are queued on it at the same time.
  PgClient holder = source();
  holder.scalar("SELECT pg_advisory_lock(1885824626, 2)::text");
  auto run = [this, &config] { return pgferry("setup", config, {"--lock-timeout", "60s"}); };
  auto first = std::async(std::launch::async, run);
  auto second = std::async(std::launch::async, run);
  EXPECT_TRUE(wait_for(holder, kSetupLockWaiters, "2")) << "both setups should be waiting for the lock";
  holder.scalar("SELECT pg_advisory_unlock(1885824626, 2)::text");
  const CliResult r1 = first.get();
  const CliResult r2 = second.get();
  ASSERT_EQ(r1.exit_code, 0) << r1.all();
  ASSERT_EQ(r2.exit_code, 0) << r2.all();
  const std::string installed = "source: pgferry schema at version 4 (applied 4 migration(s))";
  const std::string up_to_date = "source: pgferry schema at version 4 (up to date)";
  const bool first_installed = r1.out.find(installed) != std::string::npos;
  const CliResult& later = first_installed ? r2 : r1;
  EXPECT_NE((first_installed ? r1 : r2).out.find("source: public.b: capture installed"), std::string::npos)
      << r1.all() << r2.all();
  EXPECT_NE(later.out.find(up_to_date), std::string::npos) << r1.all() << r2.all();
  EXPECT_NE(later.out.find("source: public.a: capture up to date"), std::string::npos) << later.all();
  EXPECT_NE(later.out.find("nothing to change"), std::string::npos) << later.all();
  PgClient src = source();
  EXPECT_EQ(src.scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM pgferry.schema_version"),
            "1,2,3,4");
  EXPECT_EQ(src.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM pgferry.captured_table"), "1,2");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgferry'::regnamespace"), "2");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"), "8");  // four per table
  EXPECT_EQ(target().scalar("SELECT count(*) || ' ' || (SELECT count(*) FROM pgferry.table_state) "
                            "FROM pgferry.schema_version"),
            "4 2");
}

TEST_F(Setup, ManySimultaneousFirstSetupsInstallEverythingOnce) {
  on_both(kTables);
  const std::string config = write_config("  - public.a\n  - public.b\n");
  constexpr int kRuns = 4;
  std::vector<std::future<CliResult>> runs;
  runs.reserve(kRuns);
  for (int i = 0; i < kRuns; ++i) {
    runs.push_back(std::async(std::launch::async, [this, &config] { return pgferry("setup", config); }));
  }
  int installers = 0;
  for (auto& run : runs) {
    const CliResult r = run.get();
    EXPECT_EQ(r.exit_code, 0) << r.all();
    if (r.out.find("source: public.a: capture installed") != std::string::npos) ++installers;
  }
  EXPECT_EQ(installers, 1);
  PgClient src = source();
  EXPECT_EQ(src.scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM pgferry.schema_version"),
            "1,2,3,4");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.captured_table"), "2");
  EXPECT_EQ(triggers_on(src, "public.a"), kCaptureTriggers);
  src.exec("INSERT INTO a VALUES (1, 'x', 's')");
  EXPECT_EQ(src.scalar("SELECT count(*) FROM pgferry.journal"), "1");
  EXPECT_EQ(target().scalar("SELECT count(*) FROM pgferry.schema_version"), "4");
}

TEST_F(Setup, NeverPrintsThePasswordOfARoleThatHasOne) {
  on_both(kTables);
  create_role("ferry_pw", "", "", "PASSWORD 'hunter2-secret'");
  const std::string target_uri =
      "postgresql://ferry_pw:hunter2-secret@127.0.0.1:" + std::to_string(cluster_pair().target->port()) + "/" + db_;
  auto config = [&](const std::string& target, const std::string& tables) {
    return dir_.write("pw.yaml", "source: \"" + source_conninfo("ferry_pw") + " password=hunter2-secret\"\ntarget: \"" +
                                     target + "\"\ntables:\n" + tables);
  };
  // A table that does not exist: a configuration problem.
  CliResult r = pgferry("setup", config(target_uri, "  - public.missing\n"), {"--log-level", "debug"});
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.err.find("source table public.missing does not exist"), std::string::npos) << r.all();
  EXPECT_EQ(r.all().find("hunter2-secret"), std::string::npos) << r.all();
  // Missing privileges: the fix names the role, never its password.
  r = pgferry("setup", config(target_uri, "  - public.a\n"), {"--log-level", "debug"});
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("GRANT TRIGGER ON \"public\".\"a\" TO ferry_pw"), std::string::npos) << r.all();
  EXPECT_EQ(r.all().find("hunter2-secret"), std::string::npos) << r.all();
  // A target that cannot be reached.
  r = pgferry(
      "setup",
      config("postgresql://ferry_pw:hunter2-secret@127.0.0.1:1/" + db_ + "?connect_timeout=3", "  - public.a\n"),
      {"--log-level", "debug"});
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("cannot connect"), std::string::npos) << r.all();
  EXPECT_EQ(r.all().find("hunter2-secret"), std::string::npos) << r.all();
  EXPECT_EQ(source().scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");
}

TEST_F(Setup, AnUnparsableLockTimeoutIsAUsageError) {
  on_both(kTables);
  const CliResult r = pgferry("setup", write_config("  - public.a\n"), {"--lock-timeout", "soon"});
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.err.find("--lock-timeout: 'soon' is not a duration"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find("e.g. 250ms, 60s"), std::string::npos) << r.all();
  EXPECT_EQ(source().scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");
}

TEST_F(Setup, CapturesAPartitionedTableThroughItsPartitions) {
  on_both(
      "CREATE TABLE public.p (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k); "
      "CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM (0) TO (100)");
  const std::string config = write_config("  - public.p\n");
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  PgClient src = source();
  // Row triggers (cloned onto every partition): a statement trigger on p would not fire for a
  // write addressed to p1.
  EXPECT_EQ(triggers_on(src, "public.p"), (std::vector<std::string>{"pgferry_capture", "pgferry_capture_truncate"}));
  src.exec("INSERT INTO p VALUES (1, 1); INSERT INTO p1 VALUES (2, 2)");
  EXPECT_EQ(src.scalar("SELECT string_agg(new_row::text, ',' ORDER BY id) FROM pgferry.journal"),
            R"({"k": 1, "id": 1},{"k": 2, "id": 2})");
  const CliResult again = pgferry("setup", config);
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_NE(again.out.find("nothing to change"), std::string::npos) << again.all();
}

TEST_F(Setup, ACreateSchemaPrivilegeIsNotNeededWhenTheSchemaWasCreatedBeforehand) {
  on_both(kTables);
  create_role("ferry_precreated",
              "CREATE SCHEMA pgferry AUTHORIZATION ferry_precreated; ALTER TABLE public.a OWNER TO ferry_precreated",
              "CREATE SCHEMA pgferry AUTHORIZATION ferry_precreated; GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE "
              "ON public.a TO ferry_precreated");
  const CliResult r = pgferry("setup", config_as("ferry_precreated", "  - public.a\n"));
  EXPECT_EQ(r.exit_code, 0) << r.all();
  PgClient src = source();
  EXPECT_EQ(triggers_on(src, "public.a"), kCaptureTriggers);
}

TEST_F(Setup, TheSourceRoleMustBelongToTheTableOwner) {
  // CREATE TRIGGER needs only the TRIGGER privilege, but DROP TRIGGER is the owner's: a role with
  // TRIGGER alone could install capture and then never reconfigure or remove it. check and setup
  // say so before anything is installed; a member of the owner role can do everything.
  on_both(kTables);
  source().exec(
      "DO $$ BEGIN CREATE ROLE ferry_app_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$; "
      "ALTER TABLE public.a OWNER TO ferry_app_owner; ALTER TABLE public.b OWNER TO ferry_app_owner");
  create_role("ferry_trigger_only",
              "GRANT CREATE ON DATABASE \"" + db_ +
                  "\" TO ferry_trigger_only; GRANT SELECT, TRIGGER ON public.a, "
                  "public.b TO ferry_trigger_only",
              "GRANT CREATE ON DATABASE \"" + db_ +
                  "\" TO ferry_trigger_only; GRANT SELECT, INSERT, UPDATE, "
                  "DELETE, TRUNCATE ON public.a, public.b TO ferry_trigger_only");
  const std::string both = "  - public.a\n  - public.b\n";
  const CliResult check = pgferry("check", config_as("ferry_trigger_only", both));
  EXPECT_EQ(check.exit_code, 1) << check.all();
  EXPECT_NE(check.out.find("is not the owner of public.a (nor a member of its owner, ferry_app_owner)"),
            std::string::npos)
      << check.all();
  EXPECT_NE(check.out.find("GRANT ferry_app_owner TO ferry_trigger_only"), std::string::npos) << check.all();
  const CliResult refused = pgferry("setup", config_as("ferry_trigger_only", both));
  EXPECT_EQ(refused.exit_code, 1) << refused.all();
  EXPECT_EQ(source().scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'"), "0");

  source().exec("GRANT ferry_app_owner TO ferry_trigger_only");
  ASSERT_EQ(pgferry("setup", config_as("ferry_trigger_only", both)).exit_code, 0);
  ASSERT_EQ(pgferry("check", config_as("ferry_trigger_only", both)).exit_code, 0);
  CliResult r = pgferry(
      "setup", config_as("ferry_trigger_only", "  - name: public.a\n    where: \"status = 'on'\"\n  - public.b\n"));
  EXPECT_EQ(r.exit_code, 0) << r.all();
  r = pgferry("setup", config_as("ferry_trigger_only", "  - public.a\n"));
  EXPECT_EQ(r.exit_code, 0) << r.all();
  PgClient src = source();
  EXPECT_TRUE(triggers_on(src, "public.b").empty());
}

}  // namespace
}  // namespace pgferry::test
