// The settings `pgferry run` reads: batch bounds, apply options, poll interval, shutdown timeout,
// byte sizes, and the resilience settings (reconnect, connection, guard, verify). Every bad
// value is a configuration error that names the key and offers a fix.
#include <gtest/gtest.h>

#include <string>

#include "config.hpp"
#include "conninfo.hpp"
#include "journal.hpp"

namespace pgferry {
namespace {

using std::chrono::milliseconds;

Result<Config> parse(const std::string& extra, const Env& env = {}) {
  return parse_config("source: \"dbname=a\"\ntarget: \"dbname=b\"\ntables: [users]\n" + extra, "pgferry.yaml", env);
}

std::string failure(const std::string& extra, const Env& env = {}) {
  auto r = parse(extra, env);
  EXPECT_FALSE(r.ok()) << extra;
  if (r.ok()) return {};
  EXPECT_EQ(exit_code_for(r.error()), 2);
  EXPECT_FALSE(r.error().fix.empty()) << r.error().describe();
  return r.error().describe();
}

TEST(RunConfig, DefaultsSuitAFreshInstall) {
  auto r = parse("");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->batch.max_rows, 10000);
  EXPECT_EQ(r->batch.max_bytes, 64 << 20);
  EXPECT_FALSE(r->apply.replica_role);
  EXPECT_EQ(r->apply.synchronous_commit, "off");
  EXPECT_EQ(r->journal.vacuum_after_rows, 50000);
  EXPECT_EQ(r->doorbell.off_above, 1000);
  EXPECT_EQ(r->doorbell.busy_interval, milliseconds(2));
  EXPECT_EQ(r->poll_interval, milliseconds(1000));
  EXPECT_EQ(r->shutdown_timeout, milliseconds(30'000));
}

TEST(RunConfig, ReadsEverySetting) {
  auto r = parse(
      "batch: {max_rows: 500, max_bytes: 16MB}\napply: {replica_role: true, synchronous_commit: remote_apply}\n"
      "poll_interval: 250ms\n"
      "shutdown_timeout: 1m\njournal: {vacuum_after_rows: 0}\ndoorbell: {off_above: 0, busy_interval: 10ms}\n");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->batch.max_rows, 500);
  EXPECT_EQ(r->batch.max_bytes, 16 << 20);
  EXPECT_TRUE(r->apply.replica_role);
  EXPECT_EQ(r->apply.synchronous_commit, "remote_apply");
  EXPECT_EQ(r->poll_interval, milliseconds(250));
  EXPECT_EQ(r->shutdown_timeout, milliseconds(60'000));
  EXPECT_EQ(r->journal.vacuum_after_rows, 0);
  EXPECT_EQ(r->doorbell.off_above, 0);
  EXPECT_EQ(r->doorbell.busy_interval, milliseconds(10));
}

TEST(RunConfig, EnvironmentVariablesOverrideTheFile) {
  auto r = parse("batch: {max_rows: 500}\n", {{"PGFERRY_BATCH_MAX_ROWS", "42"},
                                              {"PGFERRY_BATCH_MAX_BYTES", "1GB"},
                                              {"PGFERRY_APPLY_REPLICA_ROLE", "true"},
                                              {"PGFERRY_APPLY_SYNCHRONOUS_COMMIT", "local"},
                                              {"PGFERRY_POLL_INTERVAL", "2s"},
                                              {"PGFERRY_SHUTDOWN_TIMEOUT", "5s"},
                                              {"PGFERRY_JOURNAL_VACUUM_AFTER_ROWS", "1000"},
                                              {"PGFERRY_DOORBELL_OFF_ABOVE", "250"},
                                              {"PGFERRY_DOORBELL_BUSY_INTERVAL", "5ms"}});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->batch.max_rows, 42);
  EXPECT_EQ(r->batch.max_bytes, std::int64_t{1} << 30);
  EXPECT_TRUE(r->apply.replica_role);
  EXPECT_EQ(r->apply.synchronous_commit, "local");
  EXPECT_EQ(r->poll_interval, milliseconds(2000));
  EXPECT_EQ(r->shutdown_timeout, milliseconds(5000));
  EXPECT_EQ(r->journal.vacuum_after_rows, 1000);
  EXPECT_EQ(r->doorbell.off_above, 250);
  EXPECT_EQ(r->doorbell.busy_interval, milliseconds(5));
  EXPECT_TRUE(r->warnings.empty());
}

// YAML 1.1 reads on/off as booleans: written bare they still mean PostgreSQL's on/off.
TEST(RunConfig, SynchronousCommitTakesPostgresLevelsOnly) {
  auto on = parse("apply: {synchronous_commit: on}\n");
  ASSERT_TRUE(on.ok()) << on.error().describe();
  EXPECT_EQ(on->apply.synchronous_commit, "on");
  auto off = parse("apply: {synchronous_commit: off}\n");
  ASSERT_TRUE(off.ok()) << off.error().describe();
  EXPECT_EQ(off->apply.synchronous_commit, "off");
  const auto e = failure("apply: {synchronous_commit: fsync}\n");
  EXPECT_NE(e.find("apply.synchronous_commit"), std::string::npos) << e;
  EXPECT_NE(e.find("'fsync' is not a synchronous_commit level"), std::string::npos) << e;
  EXPECT_NE(e.find("remote_apply"), std::string::npos) << e;
  EXPECT_NE(failure("apply: {synchronous_commit: [on]}\n").find("apply.synchronous_commit"), std::string::npos);
}

TEST(RunConfig, RejectsBadBatchBounds) {
  EXPECT_NE(failure("batch: {max_rows: 0}\n").find("batch.max_rows"), std::string::npos);
  EXPECT_NE(failure("batch: {max_rows: ten}\n").find("'ten'"), std::string::npos);
  EXPECT_NE(failure("batch: {max_rows: 12x}\n").find("batch.max_rows"), std::string::npos);
  EXPECT_NE(failure("batch: {max_bytes: 1kB}\n").find("out of range"), std::string::npos);
  EXPECT_NE(failure("batch: {max_bytes: 5 parsecs}\n").find("unknown unit"), std::string::npos);
  EXPECT_NE(failure("batch: {rows: 5}\n").find("batch.rows"), std::string::npos);
  EXPECT_NE(failure("batch: 5\n").find("mapping"), std::string::npos);
  EXPECT_NE(failure("", {{"PGFERRY_BATCH_MAX_ROWS", "-1"}}).find("PGFERRY_BATCH_MAX_ROWS"), std::string::npos);
}

TEST(RunConfig, RejectsABadJournalVacuumThreshold) {
  const auto negative = failure("journal: {vacuum_after_rows: -5}\n");
  EXPECT_NE(negative.find("journal.vacuum_after_rows"), std::string::npos) << negative;
  EXPECT_NE(negative.find("'-5'"), std::string::npos) << negative;
  EXPECT_NE(negative.find("0 to leave the journal to autovacuum"), std::string::npos) << negative;
  EXPECT_NE(failure("journal: {vacuum_after_rows: lots}\n").find("'lots'"), std::string::npos);
  EXPECT_NE(failure("journal: {vacuum: 5}\n").find("journal.vacuum"), std::string::npos);
  EXPECT_NE(failure("journal: 5\n").find("mapping"), std::string::npos);
}

TEST(RunConfig, RejectsABadDoorbellRate) {
  const auto negative = failure("doorbell: {off_above: -1}\n");
  EXPECT_NE(negative.find("doorbell.off_above"), std::string::npos) << negative;
  EXPECT_NE(negative.find("'-1' is not a whole number from 0 to 1000000000"), std::string::npos) << negative;
  EXPECT_NE(negative.find("transactions per second"), std::string::npos) << negative;
  EXPECT_NE(failure("doorbell: {off_above: 1.5k}\n").find("'1.5k'"), std::string::npos);
  EXPECT_NE(failure("doorbell: {off: 5}\n").find("doorbell.off"), std::string::npos);
  EXPECT_NE(failure("doorbell: on\n").find("mapping"), std::string::npos);
  EXPECT_NE(failure("", {{"PGFERRY_DOORBELL_OFF_ABOVE", "many"}}).find("PGFERRY_DOORBELL_OFF_ABOVE"),
            std::string::npos);
  const auto zero = failure("doorbell: {busy_interval: 0ms}\n");
  EXPECT_NE(zero.find("doorbell.busy_interval"), std::string::npos) << zero;
  EXPECT_NE(zero.find("out of range (1ms to 1s)"), std::string::npos) << zero;
  EXPECT_NE(zero.find("use e.g. 2ms"), std::string::npos) << zero;
  EXPECT_NE(failure("doorbell: {busy_interval: 5 fortnights}\n").find("doorbell.busy_interval"), std::string::npos);
}

TEST(RunConfig, RejectsBadApplyAndDurations) {
  EXPECT_NE(failure("apply: {replica_role: maybe}\n").find("apply.replica_role"), std::string::npos);
  EXPECT_NE(failure("apply: {role: replica}\n").find("apply.role"), std::string::npos);
  EXPECT_NE(failure("poll_interval: 1ms\n").find("shorter than 10ms"), std::string::npos);
  EXPECT_NE(failure("poll_interval: 5\n").find("unit"), std::string::npos);
  EXPECT_NE(failure("shutdown_timeout: soon\n").find("shutdown_timeout"), std::string::npos);
}

TEST(ParseBytes, ReadsUnitsAsPowersOfTwo) {
  EXPECT_EQ(*parse_bytes("0"), 0);
  EXPECT_EQ(*parse_bytes("123"), 123);
  EXPECT_EQ(*parse_bytes("123B"), 123);
  EXPECT_EQ(*parse_bytes("64kB"), 64 * 1024);
  EXPECT_EQ(*parse_bytes("64MB"), 64 << 20);
  EXPECT_EQ(*parse_bytes("2 GB"), std::int64_t{2} << 30);
  EXPECT_EQ(*parse_bytes("1TiB"), std::int64_t{1} << 40);
  EXPECT_EQ(*parse_bytes("16m"), 16 << 20);
}

TEST(ParseBytes, RejectsWhatItCannotRead) {
  for (const char* bad : {"", "MB", "-5MB", "1.5MB", "12 furlongs", "99999999999999999999", "9000000000000TB"}) {
    auto r = parse_bytes(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_FALSE(r.error().fix.empty());
    }
  }
}

// --- The resilience settings: reconnect, connection liveness, the guard, the scheduled verify ------

TEST(ResilienceConfig, DefaultsAreTheDocumentedOnes) {
  auto r = parse("");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->reconnect.initial_delay, milliseconds(100));
  EXPECT_EQ(r->reconnect.max_delay, milliseconds(30'000));
  EXPECT_EQ(r->reconnect.max_attempts, 0);
  EXPECT_EQ(r->reconnect.healthy_after, milliseconds(10'000));
  EXPECT_EQ(r->connection.keepalives_idle, milliseconds(10'000));
  EXPECT_EQ(r->connection.tcp_user_timeout, milliseconds(30'000));
  EXPECT_EQ(r->connection.heartbeat_interval, milliseconds(10'000));
  EXPECT_DOUBLE_EQ(r->guard.max_delete_fraction, 0.5);
  EXPECT_EQ(r->guard.min_rows, 1000);
  EXPECT_EQ(r->verify.every, milliseconds(0));
}

TEST(ResilienceConfig, ReadsEverySetting) {
  auto r = parse(
      "reconnect: {initial_delay: 50ms, max_delay: 5s, max_attempts: 7, healthy_after: 1m}\n"
      "connection: {keepalives_idle: 20s, tcp_user_timeout: 0s, heartbeat_interval: 2s, connect_timeout: 3s}\n"
      "guard: {max_delete_fraction: 0.25, min_rows: 10}\nverify: {every: 24h}\n");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->reconnect.initial_delay, milliseconds(50));
  EXPECT_EQ(r->reconnect.max_delay, milliseconds(5000));
  EXPECT_EQ(r->reconnect.max_attempts, 7);
  EXPECT_EQ(r->reconnect.healthy_after, milliseconds(60'000));
  EXPECT_EQ(r->connection.keepalives_idle, milliseconds(20'000));
  EXPECT_EQ(r->connection.tcp_user_timeout, milliseconds(0));
  EXPECT_EQ(r->connection.heartbeat_interval, milliseconds(2000));
  EXPECT_EQ(r->connection.connect_timeout, milliseconds(3000));
  EXPECT_DOUBLE_EQ(r->guard.max_delete_fraction, 0.25);
  EXPECT_EQ(r->guard.min_rows, 10);
  EXPECT_EQ(r->verify.every, std::chrono::hours(24));
}

TEST(ResilienceConfig, TheEnvironmentOverridesEachKey) {
  auto r = parse("reconnect: {max_attempts: 3}\n", {{"PGFERRY_RECONNECT_MAX_ATTEMPTS", "9"},
                                                    {"PGFERRY_GUARD_MAX_DELETE_FRACTION", "1"},
                                                    {"PGFERRY_CONNECTION_HEARTBEAT_INTERVAL", "0s"},
                                                    {"PGFERRY_VERIFY_EVERY", "2h"}});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_EQ(r->reconnect.max_attempts, 9);
  EXPECT_DOUBLE_EQ(r->guard.max_delete_fraction, 1.0);
  EXPECT_EQ(r->connection.heartbeat_interval, milliseconds(0));
  EXPECT_EQ(r->verify.every, std::chrono::hours(2));
  const auto bad = failure("", {{"PGFERRY_GUARD_MIN_ROWS", "lots"}});
  EXPECT_NE(bad.find("environment variable PGFERRY_GUARD_MIN_ROWS"), std::string::npos) << bad;
}

TEST(ResilienceConfig, BadValuesNameTheKeyAndTheFix) {
  EXPECT_NE(failure("reconnect: {max_delay: 50ms, initial_delay: 1s}\n").find("reconnect.max_delay"),
            std::string::npos);
  EXPECT_NE(failure("reconnect: {initial_delay: 0s}\n").find("reconnect.initial_delay"), std::string::npos);
  EXPECT_NE(failure("reconnect: {max_attempts: -1}\n").find("reconnect.max_attempts"), std::string::npos);
  EXPECT_NE(failure("reconnect: {retries: 3}\n").find("unknown key"), std::string::npos);
  EXPECT_NE(failure("reconnect: 5\n").find("must be a mapping"), std::string::npos);
  EXPECT_NE(failure("connection: {keepalives_idle: 10}\n").find("connection.keepalives_idle"), std::string::npos);
  EXPECT_NE(failure("connection: {keepalives_idle: 100ms}\n").find("out of range"), std::string::npos);
  for (const char* v : {"0", "1.5", "-0.1", "half", "nan"}) {
    const auto m = failure(std::string("guard: {max_delete_fraction: ") + v + "}\n");
    EXPECT_NE(m.find("guard.max_delete_fraction"), std::string::npos) << m;
  }
  EXPECT_NE(failure("guard: {min_rows: 1.5}\n").find("guard.min_rows"), std::string::npos);
  EXPECT_NE(failure("verify: {every: 10s}\n").find("shorter than 1m"), std::string::npos);
}

// --- What /readyz and pgferry status call healthy ------------------------------------------------

TEST(HealthConfig, DefaultsFileAndEnvironment) {
  auto d = parse("");
  ASSERT_TRUE(d.ok()) << d.error().describe();
  EXPECT_EQ(d->health.max_lag, std::chrono::seconds(30));
  EXPECT_EQ(d->health.check_interval, std::chrono::seconds(5));
  EXPECT_EQ(d->http.listen, "127.0.0.1:9187");
  auto f = parse("health: {max_lag: 2m, check_interval: 500ms}\nhttp: {listen: '127.0.0.1:0'}\n");
  ASSERT_TRUE(f.ok()) << f.error().describe();
  EXPECT_EQ(f->health.max_lag, std::chrono::minutes(2));
  EXPECT_EQ(f->health.check_interval, milliseconds(500));
  EXPECT_EQ(f->http.listen, "127.0.0.1:0");
  auto e =
      parse("health: {max_lag: 2m}\n", {{"PGFERRY_HEALTH_MAX_LAG", "10s"}, {"PGFERRY_HEALTH_CHECK_INTERVAL", "1s"}});
  ASSERT_TRUE(e.ok()) << e.error().describe();
  EXPECT_EQ(e->health.max_lag, std::chrono::seconds(10));
  EXPECT_EQ(e->health.check_interval, std::chrono::seconds(1));
}

TEST(HealthConfig, BadValuesNameTheKeyAndTheFix) {
  EXPECT_NE(failure("health: {max_lag: 0s}\n").find("health.max_lag"), std::string::npos);
  EXPECT_NE(failure("health: {max_lag: soon}\n").find("health.max_lag"), std::string::npos);
  EXPECT_NE(failure("health: {check_interval: 10ms}\n").find("health.check_interval"), std::string::npos);
  EXPECT_NE(failure("health: {lag: 5s}\n").find("unknown key"), std::string::npos);
  EXPECT_NE(failure("health: 30s\n").find("must be a mapping"), std::string::npos);
}

TEST(ConnectionDefaults, KeepalivesAndTimeoutsBecomeLibpqKeywords) {
  const auto d = connection_defaults(milliseconds(9000), milliseconds(30'000), milliseconds(10'000));
  auto find = [&](const std::string& k) -> std::string {
    for (const auto& [key, v] : d) {
      if (key == k) return v;
    }
    return "<unset>";
  };
  EXPECT_EQ(find("keepalives"), "1");
  EXPECT_EQ(find("keepalives_idle"), "9");
  EXPECT_EQ(find("keepalives_interval"), "3");
  EXPECT_EQ(find("keepalives_count"), "3");
  EXPECT_EQ(find("tcp_user_timeout"), "30000");
  EXPECT_EQ(find("connect_timeout"), "10");
  const auto off = connection_defaults(milliseconds(0), milliseconds(0), milliseconds(0));
  EXPECT_TRUE(off.empty());
}

TEST(JsonQuote, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_quote("plain"), "\"plain\"");
  EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quote(std::string("x\n\t\x01y", 5)), "\"x\\n\\t\\u0001y\"");
  EXPECT_EQ(json_quote("ünïcode"), "\"ünïcode\"");
  // Not UTF-8 (LATIN1 'é', a cut-off sequence, an overlong '/', a surrogate): U+FFFD, so the
  // document stays JSON.
  EXPECT_EQ(json_quote("caf\xe9"), "\"caf\xEF\xBF\xBD\"");
  EXPECT_EQ(json_quote("ab\xe2\x82"), "\"ab\xEF\xBF\xBD\xEF\xBF\xBD\"");
  EXPECT_EQ(json_quote("\xc0\xaf"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
  EXPECT_EQ(json_quote("\xed\xa0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
  EXPECT_EQ(json_quote("\xf0\x9f\x9a\xa2 ferry"), "\"\xf0\x9f\x9a\xa2 ferry\"");
}

}  // namespace
}  // namespace pgferry
