// status::Snapshot: the readiness verdict and recommendations of evaluate(), the JSON that /status
// serves and `pgferry status` parses back, /readyz's JSON, and the growing-backlog trend.
#include "status.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace pgferry::status {
namespace {

Connection up(const std::string& name) {
  Connection c;
  c.name = name;
  c.up = true;
  return c;
}

Connection down(const std::string& name, const std::string& error) {
  Connection c;
  c.name = name;
  c.error = error;
  return c;
}

Table table(const std::string& name, const std::string& phase, const std::string& reason = "") {
  Table t;
  t.source = name;
  t.target = name;
  t.phase = phase;
  t.reason = reason;
  return t;
}

/// A snapshot of a replicator with nothing wrong.
Snapshot healthy() {
  Snapshot s;
  s.version = "0.1.0";
  s.lag_seconds = 0.4;
  s.max_lag_seconds = 30;
  s.backlog_rows = 12;
  s.oldest_change_age_seconds = 0.4;
  s.notify_queue_usage = 0;
  s.open_sync_errors = 0;
  s.connections = {up("source"), up("target"), up("listener")};
  s.tables = {table("public.users", "streaming"), table("public.orders", "streaming")};
  return s;
}

const Check& check(const Snapshot& s, const std::string& name) {
  const auto it = std::find_if(s.checks.begin(), s.checks.end(), [&](const Check& c) { return c.name == name; });
  if (it == s.checks.end()) throw std::runtime_error("no check named " + name);
  return *it;
}

/// The recommendations that contain `text`.
std::size_t recommendations_with(const Snapshot& s, const std::string& text) {
  return static_cast<std::size_t>(
      std::count_if(s.recommendations.begin(), s.recommendations.end(),
                    [&](const std::string& r) { return r.find(text) != std::string::npos; }));
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "missing: " << (needle) << "\nin: " << (haystack)

// ---------------------------------------------------------------------------------------------
// evaluate

TEST(StatusEvaluate, ReadyWhenConnectedNothingStoppedAndLagUnderMax) {
  Snapshot s = healthy();
  evaluate(s);
  EXPECT_TRUE(s.ready);
  std::vector<std::string> names;
  for (const auto& c : s.checks) {
    names.push_back(c.name);
    EXPECT_TRUE(c.ok) << c.name << ": " << c.detail;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"source", "target", "tables", "lag"}));
  EXPECT_EQ(check(s, "tables").detail, "2 table(s), none stopped");
  EXPECT_EQ(check(s, "lag").detail, "0.4 s (max 30 s)");
  EXPECT_TRUE(s.recommendations.empty()) << s.recommendations.front();
}

TEST(StatusEvaluate, LagEqualToMaxIsStillReady) {
  Snapshot s = healthy();
  s.lag_seconds = 30;
  evaluate(s);
  EXPECT_TRUE(s.ready) << check(s, "lag").detail;
}

TEST(StatusEvaluate, SourceDownFailsWithItsErrorAndNextRetry) {
  Snapshot s = healthy();
  s.connections[0] = down("source", "connection refused");
  s.connections[0].down_seconds = 300;
  s.connections[0].next_retry_seconds = 2.5;
  evaluate(s);
  EXPECT_FALSE(s.ready);
  const auto& c = check(s, "source");
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.detail, "not connected: connection refused (next attempt in 2.5 s)");
  EXPECT_TRUE(check(s, "target").ok);
  EXPECT_EQ(recommendations_with(s, "the source database is unreachable for 5 min"), 1U);
}

TEST(StatusEvaluate, TargetDownFails) {
  Snapshot s = healthy();
  s.connections[1] = down("target", "");
  evaluate(s);
  EXPECT_FALSE(s.ready);
  EXPECT_TRUE(check(s, "source").ok);
  EXPECT_FALSE(check(s, "target").ok);
  EXPECT_EQ(check(s, "target").detail, "not connected");
  EXPECT_EQ(recommendations_with(s, "the target database is unreachable"), 1U);
}

TEST(StatusEvaluate, AConnectionNobodyReportedIsNotReady) {
  Snapshot s = healthy();
  s.connections = {up("source")};
  evaluate(s);
  EXPECT_FALSE(s.ready);
  EXPECT_EQ(check(s, "target").detail, "no target connection known");
}

TEST(StatusEvaluate, TheListenerIsNotAReadinessCheck) {
  Snapshot s = healthy();
  s.connections[2] = down("listener", "connection reset");
  evaluate(s);
  EXPECT_TRUE(s.ready);
}

TEST(StatusEvaluate, AStoppedTableIsNamedWithItsReason) {
  Snapshot s = healthy();
  s.tables.push_back(table("public.items", "stopped", "column \"qty\" does not exist"));
  s.tables.push_back(table("public.logs", "stopped"));
  evaluate(s);
  EXPECT_FALSE(s.ready);
  const auto& c = check(s, "tables");
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.detail, "stopped: public.items (column \"qty\" does not exist); public.logs");
  EXPECT_EQ(recommendations_with(s, "pgferry errors list --open"), 1U);
}

TEST(StatusEvaluate, PendingAndSnapshottingTablesAreNotStopped) {
  Snapshot s = healthy();
  s.tables = {table("public.a", "pending"), table("public.b", "snapshotting")};
  evaluate(s);
  EXPECT_TRUE(check(s, "tables").ok);
}

TEST(StatusEvaluate, LagAboveMaxFails) {
  Snapshot s = healthy();
  s.lag_seconds = 45;
  evaluate(s);
  EXPECT_FALSE(s.ready);
  EXPECT_EQ(check(s, "lag").detail, "45.0 s, above health.max_lag 30 s");
  EXPECT_EQ(recommendations_with(s, "replication lags 45 s behind the source"), 1U);
}

TEST(StatusEvaluate, UnknownLagFails) {
  Snapshot s = healthy();
  s.lag_seconds.reset();
  evaluate(s);
  EXPECT_FALSE(s.ready);
  EXPECT_FALSE(check(s, "lag").ok);
  EXPECT_EQ(check(s, "lag").detail, "not measured yet");
}

TEST(StatusEvaluate, OpenSyncErrorsAreRecommendedButDoNotMakeItUnready) {
  Snapshot s = healthy();
  s.open_sync_errors = 3;
  evaluate(s);
  EXPECT_TRUE(s.ready);
  EXPECT_EQ(recommendations_with(s, "3 open sync error(s)"), 1U);
}

TEST(StatusEvaluate, ANotifyQueueOverHalfFullIsRecommended) {
  Snapshot s = healthy();
  s.notify_queue_usage = 0.5;
  evaluate(s);
  EXPECT_EQ(recommendations_with(s, "NOTIFY queue"), 0U);
  s.notify_queue_usage = 0.62;
  evaluate(s);
  EXPECT_TRUE(s.ready);
  EXPECT_EQ(recommendations_with(s, "NOTIFY queue is 62% full"), 1U);
}

TEST(StatusEvaluate, ASweepSlowerThanItsIntervalIsRecommended) {
  Snapshot s = healthy();
  s.sweep.interval_seconds = 60;
  s.sweep.last_duration_seconds = 59;
  evaluate(s);
  EXPECT_EQ(recommendations_with(s, "sweep"), 0U);
  s.sweep.last_duration_seconds = 95;
  evaluate(s);
  EXPECT_TRUE(s.ready);
  EXPECT_EQ(recommendations_with(s, "the last sweep took 95 s, longer than sweep.interval (60 s)"), 1U);
}

TEST(StatusEvaluate, KeepsTheCallersRecommendationsAndNeverDuplicates) {
  Snapshot s = healthy();
  s.open_sync_errors = 2;
  const std::string growing = "the journal backlog has grown for 12 min: the target does not keep up";
  s.recommendations = {growing};
  evaluate(s);
  ASSERT_EQ(s.recommendations.size(), 2U);
  EXPECT_EQ(s.recommendations[0], growing);
  EXPECT_EQ(recommendations_with(s, "2 open sync error(s)"), 1U);
  // Evaluated again (the instance does so at every measurement): nothing is added twice, and the
  // checks are replaced, not appended.
  evaluate(s);
  EXPECT_EQ(s.recommendations.size(), 2U);
  EXPECT_EQ(s.checks.size(), 4U);
}

TEST(StatusEvaluate, BecomesReadyAgainWhenTheCauseIsGone) {
  Snapshot s = healthy();
  s.lag_seconds = 100;
  evaluate(s);
  EXPECT_FALSE(s.ready);
  s.lag_seconds = 1;
  evaluate(s);
  EXPECT_TRUE(s.ready);
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Every field set, strings that need escaping.
Snapshot full() {
  Snapshot s;
  s.version = "0.1.0-\"dev\"";
  s.origin = "instance";
  s.uptime_seconds = 11532.25;
  s.max_lag_seconds = 12.5;
  s.lag_seconds = 0.375;
  s.backlog_rows = 123456789012;
  s.oldest_change_age_seconds = 0.5;
  s.journal_bytes = 16777216;
  s.notify_queue_usage = 0.125;
  s.open_sync_errors = 7;
  s.last_applied_unix = 1712345678.123;
  s.sweep.interval_seconds = 60;
  s.sweep.last_started_unix = 1712345600.5;
  s.sweep.last_duration_seconds = 1.25;
  s.sweep.rows_repaired = 3;
  Connection source = up("source");
  Connection target = down("target", "could not connect to \"db\":\n\tConnection refused \\ retry");
  target.down_seconds = 65.5;
  target.next_retry_seconds = 1.5;
  Connection listener = down("listener", "");
  s.connections = {source, target, listener};
  Table users = table("public.users", "streaming");
  users.target = "public.chat_users";
  users.open_errors = 2;
  users.rows_applied = 1234;
  users.last_applied_unix = 1712345677.875;
  Table odd = table("\"Odd\".\"Zürich ✓ 日本\"", "stopped", "column \"qty\"\ndoes not exist\x01");
  s.tables = {users, odd};
  s.checks = {Check{"source", true, "connected"}, Check{"target", false, "not connected: \"x\"\n"},
              Check{"instance", false, ""}};
  s.ready = false;
  s.recommendations = {"first", "second: `pgferry errors list --open`\ttab"};
  return s;
}

void expect_same(const Snapshot& a, const Snapshot& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.origin, b.origin);
  EXPECT_EQ(a.uptime_seconds, b.uptime_seconds);
  EXPECT_EQ(a.max_lag_seconds, b.max_lag_seconds);
  EXPECT_EQ(a.lag_seconds, b.lag_seconds);
  EXPECT_EQ(a.backlog_rows, b.backlog_rows);
  EXPECT_EQ(a.oldest_change_age_seconds, b.oldest_change_age_seconds);
  EXPECT_EQ(a.journal_bytes, b.journal_bytes);
  EXPECT_EQ(a.notify_queue_usage, b.notify_queue_usage);
  EXPECT_EQ(a.open_sync_errors, b.open_sync_errors);
  EXPECT_EQ(a.last_applied_unix, b.last_applied_unix);
  EXPECT_EQ(a.sweep.interval_seconds, b.sweep.interval_seconds);
  EXPECT_EQ(a.sweep.last_started_unix, b.sweep.last_started_unix);
  EXPECT_EQ(a.sweep.last_duration_seconds, b.sweep.last_duration_seconds);
  EXPECT_EQ(a.sweep.rows_repaired, b.sweep.rows_repaired);
  ASSERT_EQ(a.connections.size(), b.connections.size());
  for (std::size_t i = 0; i < a.connections.size(); ++i) {
    const auto& x = a.connections[i];
    const auto& y = b.connections[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.up, y.up);
    EXPECT_EQ(x.error, y.error);
    EXPECT_EQ(x.down_seconds, y.down_seconds);
    EXPECT_EQ(x.next_retry_seconds, y.next_retry_seconds);
  }
  ASSERT_EQ(a.tables.size(), b.tables.size());
  for (std::size_t i = 0; i < a.tables.size(); ++i) {
    const auto& x = a.tables[i];
    const auto& y = b.tables[i];
    EXPECT_EQ(x.source, y.source);
    EXPECT_EQ(x.target, y.target);
    EXPECT_EQ(x.phase, y.phase);
    EXPECT_EQ(x.reason, y.reason);
    EXPECT_EQ(x.open_errors, y.open_errors);
    EXPECT_EQ(x.rows_applied, y.rows_applied);
    EXPECT_EQ(x.last_applied_unix, y.last_applied_unix);
  }
  ASSERT_EQ(a.checks.size(), b.checks.size());
  for (std::size_t i = 0; i < a.checks.size(); ++i) {
    EXPECT_EQ(a.checks[i].name, b.checks[i].name);
    EXPECT_EQ(a.checks[i].ok, b.checks[i].ok);
    EXPECT_EQ(a.checks[i].detail, b.checks[i].detail);
  }
  EXPECT_EQ(a.ready, b.ready);
  EXPECT_EQ(a.recommendations, b.recommendations);
}

TEST(StatusJson, EveryFieldSurvivesARoundTrip) {
  const Snapshot s = full();
  auto parsed = from_json(to_json(s));
  ASSERT_TRUE(parsed) << parsed.error().describe();
  expect_same(s, *parsed);
}

TEST(StatusJson, NullsSurviveARoundTrip) {
  Snapshot s;
  s.version = "0.1.0";
  s.origin = "databases";
  s.ready = true;  // not what evaluate() would say; the JSON carries what it is given
  s.connections = {down("source", "")};
  s.tables = {table("public.users", "")};
  const std::string json = to_json(s);
  EXPECT_CONTAINS(json, R"("uptime_seconds":null)");
  EXPECT_CONTAINS(json, R"("journal":{"backlog_rows":null,"oldest_change_age_seconds":null,"bytes":null})");
  auto parsed = from_json(json);
  ASSERT_TRUE(parsed) << parsed.error().describe();
  expect_same(s, *parsed);
  EXPECT_FALSE(parsed->lag_seconds.has_value());
  EXPECT_FALSE(parsed->connections[0].next_retry_seconds.has_value());
  EXPECT_FALSE(parsed->tables[0].last_applied_unix.has_value());
}

TEST(StatusJson, AnEvaluatedSnapshotRoundTrips) {
  Snapshot s = healthy();
  s.connections[0] = down("source", "timeout");
  s.connections[0].next_retry_seconds = 3;
  s.open_sync_errors = 1;
  evaluate(s);
  auto parsed = from_json(to_json(s));
  ASSERT_TRUE(parsed) << parsed.error().describe();
  expect_same(s, *parsed);
}

TEST(StatusJson, IsOneObjectWithTheDocumentedKeys) {
  const std::string json = to_json(full());
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  EXPECT_EQ(json.find('\n'), std::string::npos) << "newlines in strings are escaped";
  for (const char* key :
       {"\"version\":", "\"origin\":", "\"ready\":", "\"uptime_seconds\":", "\"lag_seconds\":", "\"max_lag_seconds\":",
        "\"journal\":", "\"notify_queue_usage\":", "\"open_sync_errors\":", "\"last_applied_unix\":", "\"sweep\":",
        "\"connections\":", "\"tables\":", "\"checks\":", "\"recommendations\":"}) {
    EXPECT_CONTAINS(json, key);
  }
}

TEST(StatusJson, UnknownKeysAreIgnored) {
  // A newer pgferry may add fields; an older `pgferry status` still reads the rest.
  auto parsed = from_json(R"({"version":"9.9.9","future":{"a":[1,2,{"b":null}]},"ready":true,)"
                          R"("tables":[{"source":"public.t","phase":"streaming","new_field":"x"}],"lag_seconds":1.5})");
  ASSERT_TRUE(parsed) << parsed.error().describe();
  EXPECT_EQ(parsed->version, "9.9.9");
  EXPECT_TRUE(parsed->ready);
  ASSERT_EQ(parsed->tables.size(), 1U);
  EXPECT_EQ(parsed->tables[0].phase, "streaming");
  EXPECT_EQ(parsed->lag_seconds, 1.5);
}

TEST(StatusJson, GarbageIsAnErrorNamingStatus) {
  for (const char* text :
       {"", "not json", "<html>Not Found</html>", "[1,2,3]", "42", R"("ready")", R"({"ready":"yes"})",
        R"({"lag_seconds":"fast"})", R"({"tables":{"source":"x"}})", R"({"tables":[{"open_errors":1.5}]})",
        R"({"connections":[{"up":1}]})", R"({"journal":{"backlog_rows":"many"}})", R"({"version":"0.1.0",)",
        R"({"uptime_seconds":nul})", R"({"uptime_seconds":nulx})", R"({"uptime_seconds":n)",
        R"({"version":"0.1.0"} junk)"}) {
    Result<Snapshot> parsed = Snapshot{};
    ASSERT_NO_THROW(parsed = from_json(text)) << text;
    ASSERT_FALSE(parsed) << "accepted: " << text;
    EXPECT_EQ(parsed.error().where, "/status") << text;
    EXPECT_CONTAINS(parsed.error().message, "unexpected JSON");
    EXPECT_EQ(parsed.error().kind, ErrorKind::Runtime);
  }
}

TEST(StatusJson, ReadinessHasReadyAndTheChecks) {
  Snapshot s = healthy();
  s.lag_seconds = 99;
  evaluate(s);
  EXPECT_EQ(readiness_json(s), R"({"ready":false,"checks":[{"name":"source","ok":true,"detail":"connected"},)"
                               R"({"name":"target","ok":true,"detail":"connected"},)"
                               R"({"name":"tables","ok":true,"detail":"2 table(s), none stopped"},)"
                               R"({"name":"lag","ok":false,"detail":"99.0 s, above health.max_lag 30 s"}]})");
  s.lag_seconds = 1;
  evaluate(s);
  EXPECT_EQ(readiness_json(s).rfind(R"({"ready":true,"checks":[{"name":"source",)", 0), 0U) << readiness_json(s);
}

// ---------------------------------------------------------------------------------------------
// BacklogTrend

TEST(StatusBacklogTrend, SteadyGrowthForTenMinutesCounts) {
  BacklogTrend trend(600);
  for (int t = 0; t <= 600; t += 5) trend.add(t, 100 + t);
  EXPECT_GE(trend.growing_for(), 600);
}

TEST(StatusBacklogTrend, NotEnoughSamplesIsNotGrowth) {
  BacklogTrend trend(600);
  EXPECT_EQ(trend.growing_for(), 0);
  trend.add(0, 100);
  EXPECT_EQ(trend.growing_for(), 0);
  trend.add(5, 200);
  EXPECT_EQ(trend.growing_for(), 5);
}

TEST(StatusBacklogTrend, OnlyTheGrowthAfterADipBelowTheStartCounts) {
  BacklogTrend trend(600);
  for (int t = 0; t <= 300; t += 5) trend.add(t, 1000 + t);  // grows 1000 -> 1300
  trend.add(305, 500);                                       // drained below where it started
  for (int t = 310; t <= 600; t += 5) trend.add(t, 500 + t);
  EXPECT_DOUBLE_EQ(trend.growing_for(), 600 - 305);
}

TEST(StatusBacklogTrend, ABacklogThatEmptiesIsNotGrowing) {
  BacklogTrend trend(600);
  for (int t = 0; t <= 600; t += 5) trend.add(t, 100 + t);
  trend.add(605, 0);
  EXPECT_EQ(trend.growing_for(), 0);
  // Growth after the empty journal counts from the first non-empty sample only.
  trend.add(610, 10);
  trend.add(615, 20);
  EXPECT_DOUBLE_EQ(trend.growing_for(), 5);
}

TEST(StatusBacklogTrend, JitterOnTheWayUpIsStillGrowth) {
  // Batches drain a little between samples; the backlog still triples over 700 s.
  BacklogTrend trend(600);
  const int rows[] = {100, 150, 140, 200, 190, 260, 250, 320};
  for (int i = 0; i < 8; ++i) trend.add(i * 100, rows[i]);
  EXPECT_DOUBLE_EQ(trend.growing_for(), 700);
}

TEST(StatusBacklogTrend, ANoisyFlatBacklogIsNotGrowingForLong) {
  // Up and down around 5000: back at (or below) an earlier level in every span's second half.
  BacklogTrend trend(600);
  for (int t = 0; t <= 1200; t += 5) trend.add(t, (t / 5) % 2 == 0 ? 5000 : 4990);
  EXPECT_LT(trend.growing_for(), 600);
}

TEST(StatusBacklogTrend, AFlatBacklogIsNotGrowing) {
  BacklogTrend trend(600);
  for (int t = 0; t <= 1200; t += 5) trend.add(t, 5000);
  EXPECT_EQ(trend.growing_for(), 0);
}

TEST(StatusBacklogTrend, SamplesOlderThanTwoWindowsAreDropped) {
  BacklogTrend trend(600);
  for (int t = 0; t <= 3600; t += 5) trend.add(t, 100 + t);  // an hour of growth
  EXPECT_DOUBLE_EQ(trend.growing_for(), 1200);
}

}  // namespace
}  // namespace pgferry::status
