// The resilience settings: reconnect backoff, connection liveness, the mass-delete guard and the
// scheduled verify. Defaults match the documentation; every bad value is a configuration error
// naming the key with a fix; the environment overrides each.
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
  EXPECT_EQ(json_quote(std::string("x\n\t\x01y", 5)), "\"x\\u000a\\u0009\\u0001y\"");
  EXPECT_EQ(json_quote("ünïcode"), "\"ünïcode\"");
}

}  // namespace
}  // namespace pgferry
