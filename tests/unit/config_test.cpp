// pgferry.yaml parsing and validation: every good shape, and every bad one with a message that
// names the file, the key and the value, and says how to fix it.
#include "config.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pgferry {
namespace {

using std::chrono::milliseconds;

constexpr const char* kFull = R"(source: "host=127.0.0.1 port=5432 dbname=app user=pgferry"
target: "postgresql://pgferry@127.0.0.1:5433/chat"
tables:
  - name: public.users
    target: public.chat_users
    columns: {id: id, first_name: name, status: status}
    where: "status = 'active'"
    updated_at: updated_at
  - public.orders
sweep: {interval: 90s, lookback_multiplier: 4}
http: {listen: "127.0.0.1:9999"}
log: {level: debug, format: json}
)";

Result<Config> parse(const std::string& text, const Env& env = {}) { return parse_config(text, "pgferry.yaml", env); }

/// Parses text that must fail with a config error; returns the error's full description.
std::string config_failure(const std::string& text, const Env& env = {}) {
  auto r = parse(text, env);
  EXPECT_FALSE(r.ok()) << "expected a configuration error for:\n" << text;
  if (r.ok()) return {};
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
  EXPECT_EQ(exit_code_for(r.error()), 2);
  EXPECT_FALSE(r.error().fix.empty()) << "no fix offered: " << r.error().describe();
  return r.error().describe();
}

std::string with_tables(const std::string& tables) {
  return "source: \"dbname=a\"\ntarget: \"dbname=b\"\ntables:\n" + tables;
}

TEST(Config, ParsesTheDocumentedExample) {
  auto r = parse(kFull);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  const Config& c = *r;
  EXPECT_EQ(c.source, "host=127.0.0.1 port=5432 dbname=app user=pgferry");
  EXPECT_EQ(c.target, "postgresql://pgferry@127.0.0.1:5433/chat");
  ASSERT_EQ(c.tables.size(), 2U);
  const TableConfig& users = c.tables[0];
  EXPECT_EQ(users.source, (sql::QualifiedName{"public", "users"}));
  EXPECT_EQ(users.target, (sql::QualifiedName{"public", "chat_users"}));
  ASSERT_EQ(users.columns.size(), 3U);
  EXPECT_EQ(users.columns[1], (ColumnMapping{"first_name", "name"}));
  EXPECT_EQ(users.where, "status = 'active'");
  EXPECT_EQ(users.updated_at, "updated_at");
  EXPECT_TRUE(users.truncate);
  EXPECT_FALSE(users.all_columns());
  const TableConfig& orders = c.tables[1];
  EXPECT_EQ(orders.source, (sql::QualifiedName{"public", "orders"}));
  EXPECT_EQ(orders.target, orders.source);
  EXPECT_TRUE(orders.all_columns());
  EXPECT_FALSE(orders.updated_at.has_value());
  EXPECT_EQ(c.sweep.interval, milliseconds(90'000));
  EXPECT_DOUBLE_EQ(c.sweep.lookback_multiplier, 4.0);
  EXPECT_EQ(c.http.listen, "127.0.0.1:9999");
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.format, "json");
  EXPECT_EQ(c.find_table({"public", "orders"}), &c.tables[1]);
  EXPECT_EQ(c.find_table({"public", "nope"}), nullptr);
}

TEST(Config, AppliesDefaults) {
  auto r = parse(with_tables("  - users\n"));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->tables[0].source, (sql::QualifiedName{"public", "users"}));
  EXPECT_EQ(r->sweep.interval, milliseconds(60'000));
  EXPECT_DOUBLE_EQ(r->sweep.lookback_multiplier, 3.0);
  EXPECT_EQ(r->http.listen, "127.0.0.1:9187");
  EXPECT_EQ(r->log.level, "info");
  EXPECT_EQ(r->log.format, "auto");
  EXPECT_TRUE(r->warnings.empty());
}

TEST(Config, KeepsQuotedIdentifiersExactly) {
  auto r = parse(with_tables("  - name: '\"My Schema\".\"Odd \"\"Table\"\"\"'\n    columns: ['\"Mixed Case\"', id]\n"));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->tables[0].source, (sql::QualifiedName{"My Schema", "Odd \"Table\""}));
  ASSERT_EQ(r->tables[0].columns.size(), 2U);
  EXPECT_EQ(r->tables[0].columns[0], (ColumnMapping{"Mixed Case", "Mixed Case"}));
  EXPECT_EQ(r->tables[0].columns[1], (ColumnMapping{"id", "id"}));
}

TEST(Config, TruncateCanBeTurnedOff) {
  auto r = parse(with_tables("  - name: t\n    truncate: false\n"));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_FALSE(r->tables[0].truncate);
  EXPECT_NE(config_failure(with_tables("  - name: t\n    truncate: maybe\n")).find("true or false"), std::string::npos);
}

TEST(Config, InsertCaptureIsPerStatementUnlessSetToRow) {
  auto r = parse(
      with_tables("  - name: t\n  - name: u\n    insert_capture: row\n  - name: v\n    insert_capture: statement\n"));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_TRUE(r->tables[0].statement_inserts);
  EXPECT_FALSE(r->tables[1].statement_inserts);
  EXPECT_TRUE(r->tables[2].statement_inserts);
  const auto bad = config_failure(with_tables("  - name: t\n    insert_capture: rows\n"));
  EXPECT_NE(bad.find("tables[0].insert_capture"), std::string::npos) << bad;
  EXPECT_NE(bad.find("must be 'statement' or 'row', not 'rows'"), std::string::npos) << bad;
}

TEST(Config, SubstitutesEnvironmentVariables) {
  const Env env{{"DB_HOST", "db.internal"}, {"PASS", "s3cret"}};
  auto r =
      parse("source: \"host=${DB_HOST} password=${PASS}\"\ntarget: \"host=${OTHER:-localhost}\"\ntables: [t]\n", env);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->source, "host=db.internal password=s3cret");
  EXPECT_EQ(r->target, "host=localhost");
  auto literal = substitute_env("cost $$5 ${DB_HOST}", env);
  ASSERT_TRUE(literal.ok());
  EXPECT_EQ(*literal, "cost $5 db.internal");
}

TEST(Config, UndefinedEnvironmentVariableIsNamed) {
  const std::string message = config_failure("source: \"host=${NOPE_NOT_SET}\"\ntarget: x\ntables: [t]\n");
  EXPECT_NE(message.find("NOPE_NOT_SET"), std::string::npos) << message;
  EXPECT_NE(message.find("source"), std::string::npos) << message;
  EXPECT_FALSE(substitute_env("${unclosed", {}).ok());
  EXPECT_FALSE(substitute_env("${1BAD}", {}).ok());
}

TEST(Config, EnvironmentOverridesEveryScalarKey) {
  const Env env{{"PGFERRY_SOURCE", "dbname=from_env"},
                {"PGFERRY_TARGET", "dbname=target_env"},
                {"PGFERRY_HTTP_LISTEN", "0.0.0.0:9187"},
                {"PGFERRY_SWEEP_INTERVAL", "2m"},
                {"PGFERRY_SWEEP_LOOKBACK_MULTIPLIER", "5"},
                {"PGFERRY_LOG_LEVEL", "warn"},
                {"PGFERRY_LOG_FORMAT", "text"}};
  auto r = parse(kFull, env);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->source, "dbname=from_env");
  EXPECT_EQ(r->target, "dbname=target_env");
  EXPECT_EQ(r->http.listen, "0.0.0.0:9187");
  EXPECT_EQ(r->sweep.interval, milliseconds(120'000));
  EXPECT_DOUBLE_EQ(r->sweep.lookback_multiplier, 5.0);
  EXPECT_EQ(r->log.level, "warn");
  EXPECT_EQ(r->log.format, "text");
}

TEST(Config, TablesComeFromTheEnvironment) {
  const Env env{{"PGFERRY_SOURCE", "dbname=a"},
                {"PGFERRY_TARGET", "dbname=b"},
                {"PGFERRY_TABLES", "[public.users, {name: public.orders, target: archive.orders}]"}};
  auto r = parse("", env);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  ASSERT_EQ(r->tables.size(), 2U);
  EXPECT_EQ(r->tables[1].target, (sql::QualifiedName{"archive", "orders"}));
  const std::string message =
      config_failure("", {{"PGFERRY_SOURCE", "a"}, {"PGFERRY_TARGET", "b"}, {"PGFERRY_TABLES", "[unclosed"}});
  EXPECT_NE(message.find("PGFERRY_TABLES"), std::string::npos) << message;
}

TEST(Config, BadEnvironmentValueNamesTheVariable) {
  const std::string message = config_failure(kFull, {{"PGFERRY_SWEEP_INTERVAL", "soon"}});
  EXPECT_NE(message.find("PGFERRY_SWEEP_INTERVAL"), std::string::npos) << message;
  EXPECT_NE(message.find("soon"), std::string::npos) << message;
}

TEST(Config, UnknownPgferryVariableIsAWarningNotAnError) {
  auto r = parse(kFull, {{"PGFERRY_SOURSE", "typo"}});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  ASSERT_EQ(r->warnings.size(), 1U);
  EXPECT_NE(r->warnings[0].find("PGFERRY_SOURSE"), std::string::npos) << r->warnings[0];
}

TEST(Config, RejectsUnknownKeyAndSuggestsNearest) {
  const std::string message = config_failure(std::string(kFull) + "sweeep: {interval: 5s}\n");
  EXPECT_NE(message.find("sweeep"), std::string::npos) << message;
  EXPECT_NE(message.find("sweep"), std::string::npos) << message;
  EXPECT_NE(message.find("pgferry.yaml"), std::string::npos) << message;
}

TEST(Config, RejectsUnknownTableKey) {
  const std::string message = config_failure(with_tables("  - name: t\n    wher: \"x = 1\"\n"));
  EXPECT_NE(message.find("wher"), std::string::npos) << message;
  EXPECT_NE(message.find("where"), std::string::npos) << message;
}

TEST(Config, RejectsWrongTypes) {
  EXPECT_NE(config_failure("source: a\ntarget: b\ntables: users\n").find("tables"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - t\nsweep: {interval: [1, 2]}\n")).find("sweep.interval"),
            std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - t\nhttp: 9187\n")).find("http"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - t\nhttp: {listen: nonsense}\n")).find("nonsense"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - t\nlog: {level: loud}\n")).find("loud"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - t\nsweep: {lookback_multiplier: lots}\n")).find("lots"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - name: t\n    columns: 7\n")).find("columns"), std::string::npos);
}

TEST(Config, RejectsBadDurations) {
  for (const char* bad : {"60", "abc", "-5s", "5 parsecs", "", "1.5.5s"}) {
    auto d = parse_duration(bad);
    EXPECT_FALSE(d.ok()) << "accepted '" << bad << "'";
    if (!d.ok()) {
      EXPECT_NE(d.error().describe().find(std::string("'") + bad + "'"), std::string::npos) << d.error().describe();
    }
  }
  const std::string message = config_failure(with_tables("  - t\nsweep: {interval: 60}\n"));
  EXPECT_NE(message.find("sweep.interval"), std::string::npos) << message;
  EXPECT_NE(config_failure(with_tables("  - t\nsweep: {interval: 10ms}\n")).find("1s"), std::string::npos);
}

TEST(Config, DurationsRoundTrip) {
  EXPECT_EQ(*parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(*parse_duration("60s"), milliseconds(60'000));
  EXPECT_EQ(*parse_duration("1m30s"), milliseconds(90'000));
  EXPECT_EQ(*parse_duration("2h"), milliseconds(7'200'000));
  EXPECT_EQ(*parse_duration("1d"), milliseconds(86'400'000));
  for (auto ms : {250, 1000, 90'000, 3'600'000, 3'723'004}) {
    const std::string text = format_duration(milliseconds(ms));
    auto back = parse_duration(text);
    ASSERT_TRUE(back.ok()) << text;
    EXPECT_EQ(*back, milliseconds(ms)) << text;
  }
  EXPECT_EQ(format_duration(milliseconds(90'000)), "1m30s");
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
}

TEST(Config, RequiresSourceTargetAndTables) {
  EXPECT_NE(config_failure("target: b\ntables: [t]\n").find("source"), std::string::npos);
  EXPECT_NE(config_failure("source: a\ntables: [t]\n").find("target"), std::string::npos);
  EXPECT_NE(config_failure("source: a\ntarget: b\n").find("tables"), std::string::npos);
  EXPECT_NE(config_failure("source: a\ntarget: b\ntables: []\n").find("tables"), std::string::npos);
  EXPECT_NE(config_failure("source: \"\"\ntarget: b\ntables: [t]\n").find("source"), std::string::npos);
}

TEST(Config, RejectsDuplicateTables) {
  const std::string message = config_failure(with_tables("  - public.users\n  - name: users\n"));
  EXPECT_NE(message.find("users"), std::string::npos) << message;
  const std::string targets = config_failure(with_tables("  - name: a\n    target: x\n  - name: b\n    target: x\n"));
  EXPECT_NE(targets.find('x'), std::string::npos) << targets;
}

TEST(Config, RejectsBadIdentifiers) {
  EXPECT_NE(config_failure(with_tables("  - name: 'a.b.c.d'\n")).find("a.b.c.d"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - name: '\"unclosed'\n")).find("unclosed"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - name: 'has space'\n")).find("has space"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - name: t\n    columns: {id: id, a: id}\n")).find("id"), std::string::npos);
}

TEST(Config, RejectsFiltersThatCannotParse) {
  for (const char* bad : {"(status = 'a'", "status = 'a", "status = 'a'; DROP TABLE users", "a = 1)"}) {
    EXPECT_FALSE(check_filter_syntax(bad).ok()) << bad;
  }
  EXPECT_TRUE(check_filter_syntax("name = 'it''s (fine)' AND \"Odd;Col\" > 0").ok());
  const std::string message = config_failure(with_tables("  - name: t\n    where: \"(status = 'a'\"\n"));
  EXPECT_NE(message.find("where"), std::string::npos) << message;
}

TEST(Config, InvalidYamlNamesTheLine) {
  const std::string message = config_failure("source: a\ntarget: b\ntables: [t\n  bad: : :\n");
  EXPECT_NE(message.find("pgferry.yaml:"), std::string::npos) << message;
}

TEST(Config, NeverEchoesPasswords) {
  const std::string message =
      config_failure("source: \"host=x password=hunter2\"\ntarget: \"postgresql://u:hunter3@h/db\"\ntables: users\n");
  EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  EXPECT_EQ(message.find("hunter3"), std::string::npos) << message;
}

TEST(Config, MissingFileIsAConfigError) {
  auto r = load_config("/nonexistent/pgferry.yaml", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
  EXPECT_NE(r.error().describe().find("/nonexistent/pgferry.yaml"), std::string::npos);
}

TEST(Config, ErrorsInsidePgferryTablesNameTheVariable) {
  const std::string message = config_failure(
      "", {{"PGFERRY_SOURCE", "dbname=a"}, {"PGFERRY_TARGET", "dbname=b"}, {"PGFERRY_TABLES", "[\"has space\"]"}});
  EXPECT_NE(message.find("has space"), std::string::npos) << message;
  EXPECT_NE(message.find("PGFERRY_TABLES"), std::string::npos) << message;
}

TEST(Config, EnvironmentOverrideCreatesAMissingSection) {
  auto r = parse(with_tables("  - t\n"), {{"PGFERRY_SWEEP_INTERVAL", "5m"}, {"PGFERRY_HTTP_LISTEN", "[::1]:8080"}});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->sweep.interval, milliseconds(300'000));
  EXPECT_DOUBLE_EQ(r->sweep.lookback_multiplier, 3.0);
  EXPECT_EQ(r->http.listen, "[::1]:8080");
  const std::string message = config_failure(with_tables("  - t\n"), {{"PGFERRY_HTTP_LISTEN", "9187"}});
  EXPECT_NE(message.find("PGFERRY_HTTP_LISTEN"), std::string::npos) << message;
  EXPECT_NE(message.find("'9187' is not host:port"), std::string::npos) << message;
}

TEST(Config, HarnessVariablesAreNotWarnedAbout) {
  auto r = parse(kFull, {{"PGFERRY_CONFIG", "x.yaml"},
                         {"PGFERRY_TEST_FOO", "1"},
                         {"PGFERRY_PG_BINDIR", "/usr/lib"},
                         {"PGFERRY_QUICKSTART_DIR", "/tmp"},
                         {"PGFERRY_SKIP_DEPS", "1"},
                         {"NOT_OURS", "x"}});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_TRUE(r->warnings.empty()) << r->warnings[0];
}

TEST(Config, UnknownKeyFarFromEveryKeyListsTheAllowedKeys) {
  const std::string message = config_failure(std::string(kFull) + "replication_slot: x\n");
  EXPECT_NE(message.find("unknown key 'replication_slot'"), std::string::npos) << message;
  EXPECT_EQ(message.find("did you mean"), std::string::npos) << message;
  EXPECT_NE(message.find("allowed keys here: source, target, tables, sweep, batch, apply, journal, reconnect, "
                         "connection, guard, verify, doorbell, poll_interval, shutdown_timeout, http, health, log"),
            std::string::npos)
      << message;
  // The line of the offending key is named.
  EXPECT_NE(message.find("pgferry.yaml:13"), std::string::npos) << message;
}

TEST(Config, UnknownNestedKeySuggestsTheFullKey) {
  const std::string message = config_failure(with_tables("  - t\nsweep: {intervall: 5s}\n"));
  EXPECT_NE(message.find("unknown key 'sweep.intervall'"), std::string::npos) << message;
  EXPECT_NE(message.find("did you mean 'sweep.interval'"), std::string::npos) << message;
}

TEST(Config, RejectsMalformedTableEntries) {
  EXPECT_NE(config_failure(with_tables("  - [a, b]\n")).find("must be a table name or a mapping"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - target: x\n")).find("has no 'name'"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - name: t\n    columns: []\n")).find("is empty"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - name: t\n    updated_at: 'bad col'\n")).find("bad col"), std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - name: t\n    target: 'x.y.z'\n")).find("tables[0].target"),
            std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - name: t\n    columns: [id, id]\n")).find("listed twice"),
            std::string::npos);
  EXPECT_NE(config_failure("[1, 2]\n").find("must be a mapping"), std::string::npos);
}

TEST(Config, RejectsOutOfRangeSettings) {
  for (const char* bad : {"0.5", "1001", "nan", "inf", "3x"}) {
    const std::string message =
        config_failure(with_tables(std::string("  - t\nsweep: {lookback_multiplier: ") + bad + "}\n"));
    EXPECT_NE(message.find("sweep.lookback_multiplier"), std::string::npos) << message;
    EXPECT_NE(message.find(bad), std::string::npos) << message;
  }
  for (const char* bad : {":9187", "host:", "host:99999", "host:port", "host:123456"}) {
    const std::string message = config_failure(with_tables(std::string("  - t\nhttp: {listen: '") + bad + "'}\n"));
    EXPECT_NE(message.find("http.listen"), std::string::npos) << message;
  }
  EXPECT_NE(config_failure(with_tables("  - t\nsweep: {interval: 999ms}\n")).find("shorter than 1s"),
            std::string::npos);
  EXPECT_NE(config_failure(with_tables("  - t\nlog: {format: xml}\n")).find("auto, text, json"), std::string::npos);
}

TEST(Config, AcceptsFractionalAndCompoundDurations) {
  EXPECT_EQ(*parse_duration("1.5s"), milliseconds(1500));
  EXPECT_EQ(*parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(*parse_duration("2min"), milliseconds(120'000));
  EXPECT_EQ(*parse_duration("1h30m15s250ms"), milliseconds(5'415'250));
  EXPECT_EQ(*parse_duration("365d"), milliseconds(31'536'000'000));
  auto r = parse(with_tables("  - t\nsweep: {interval: 1.5s}\n"));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->sweep.interval, milliseconds(1500));
}

TEST(Config, RejectsMoreBadDurations) {
  for (const char* bad :
       {"1m30", "s", ".s", "1e3s", " 5s", "5 s", "5S", "366d", "99999999999999999999h", "5s ", "ms", "1..s"}) {
    auto d = parse_duration(bad);
    EXPECT_FALSE(d.ok()) << "accepted '" << bad << "' as " << (d.ok() ? d->count() : 0) << "ms";
    if (!d.ok()) {
      EXPECT_EQ(d.error().kind, ErrorKind::Config);
      EXPECT_NE(d.error().fix.find("ms, s, m, h or d"), std::string::npos) << d.error().describe();
    }
  }
}

TEST(Config, FormatDurationUsesTheLargestUnits) {
  EXPECT_EQ(format_duration(milliseconds(0)), "0s");
  EXPECT_EQ(format_duration(milliseconds(1)), "1ms");
  EXPECT_EQ(format_duration(milliseconds(60'000)), "1m");
  EXPECT_EQ(format_duration(milliseconds(3'600'000)), "1h");
  EXPECT_EQ(format_duration(milliseconds(86'400'001)), "1d1ms");
  EXPECT_EQ(format_duration(milliseconds(3'723'004)), "1h2m3s4ms");
}

TEST(Config, SubstitutionIsSinglePassWithDefaults) {
  const Env env{{"A", "${B}"}, {"B", "b"}, {"EMPTY", ""}};
  EXPECT_EQ(*substitute_env("${A}", env), "${B}");  // Values are not expanded again.
  EXPECT_EQ(*substitute_env("x${UNSET:-}y", env), "xy");
  EXPECT_EQ(*substitute_env("${UNSET:-a:-b}", env), "a:-b");
  EXPECT_EQ(*substitute_env("${EMPTY:-default}", env), "");  // Set but empty counts as set.
  EXPECT_EQ(*substitute_env("$HOME and $", env), "$HOME and $");
  EXPECT_EQ(*substitute_env("$$${B}$$", env), "$b$");
  for (const char* bad : {"${}", "${A B}", "${A-b}", "${:-x}"}) {
    auto r = substitute_env(bad, env);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().kind, ErrorKind::Config);
    }
  }
  auto unset = substitute_env("${MISSING}", env);
  ASSERT_FALSE(unset.ok());
  EXPECT_NE(unset.error().describe().find("MISSING"), std::string::npos);
  EXPECT_NE(unset.error().fix.find("${MISSING:-default}"), std::string::npos) << unset.error().fix;
}

TEST(Config, SubstitutionReachesTableNamesAndFilters) {
  const Env env{{"SCHEMA", "app"}, {"STATUS", "active"}};
  auto r = parse(with_tables("  - name: ${SCHEMA}.users\n    where: \"status = '${STATUS}'\"\n"), env);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->tables[0].source, (sql::QualifiedName{"app", "users"}));
  EXPECT_EQ(r->tables[0].where, "status = 'active'");
}

TEST(Config, FilterCheckRejectsCommentsParametersAndEmptiness) {
  for (const char* bad :
       {"a = 1 -- trailing", "a = 1 /* c */", "a = $1", "$$x$$", "   ", "", "\"unterminated = 1", ")(", "((a = 1)"}) {
    auto s = check_filter_syntax(bad);
    EXPECT_FALSE(s.ok()) << "accepted [" << bad << "]";
    if (!s.ok()) {
      EXPECT_EQ(s.error().kind, ErrorKind::Config);
      EXPECT_FALSE(s.error().fix.empty());
    }
  }
  for (const char* good : {"a = 1", "(a = 1) OR (b IN (1, 2))", "note = '-- not a comment; ok $1'", "a - -1 > 0",
                           "\"we;ird\" IS NOT NULL", "a / 2 > 1"}) {
    EXPECT_TRUE(check_filter_syntax(good).ok()) << good;
  }
}

TEST(Config, FilterCheckSeesThroughEscapeStrings) {
  // E'\'' is one string holding a quote, so the ';' after it separates statements.
  const std::string filter = "x = E'\\'' ; DROP TABLE t; --'";
  EXPECT_FALSE(check_filter_syntax(filter).ok());
}

TEST(Config, FilterCheckReadsEscapeStringsLikePostgres) {
  EXPECT_TRUE(check_filter_syntax("x = E'a\\'b'").ok());
  EXPECT_TRUE(check_filter_syntax("x = e'\\'' AND (y = 1)").ok());
  EXPECT_TRUE(check_filter_syntax("x IN (E'\\\\', 'plain\\')").ok());  // E'\\' ends after the escaped backslash.
  EXPECT_FALSE(check_filter_syntax("x = E'\\\\' ; y").ok());
  EXPECT_FALSE(check_filter_syntax("x = E'never closed\\'").ok());
  // Not escape strings: E ending an identifier, so the backslash is an ordinary character.
  EXPECT_FALSE(check_filter_syntax("typE'\\' ; DROP TABLE t; --'").ok());
  EXPECT_FALSE(check_filter_syntax("\"colE\"'\\' ; DROP TABLE t; --'").ok());
}

TEST(Config, FilterCheckTreatsNonAsciiLettersAsPartOfAnIdentifier) {
  // PostgreSQL reads every byte >= 0x80 as an identifier character, so "éE" is one identifier, the
  // string after it is a plain '\' (standard_conforming_strings), and the ';' separates statements.
  const std::string filter = "éE'\\' ; DROP TABLE t; --'";
  EXPECT_FALSE(check_filter_syntax(filter).ok());
}

TEST(Config, DuplicateKeysAreRejected) {
  auto r = parse("source: \"dbname=a\"\nsource: \"dbname=c\"\ntarget: \"dbname=b\"\ntables: [t]\n");
  ASSERT_FALSE(r.ok()) << "a repeated key was accepted";
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
  EXPECT_NE(r.error().describe().find("source"), std::string::npos);
}

TEST(Config, PasswordsStayOutOfEveryKindOfFailure) {
  const std::string src = "source: \"host=x password=hunter2\"\n";
  for (const std::string& text :
       {src + "target: [b]\ntables: [t]\n", src + "tables: [t]\n",
        src + "target: b\ntables: [t]\nsweep: {interval: 60}\n", src + "target: b\ntables: [\"bad name\"]\n",
        src + "target: b\ntables: [t\n", src + "target: b\ntables: [t]\nsourc: x\n",
        std::string("source: \"host=x password=hunter2 ${UNSET_VAR}\"\ntarget: b\ntables: [t]\n")}) {
    const std::string message = config_failure(text);
    EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  }
  const std::string from_env =
      config_failure(with_tables("  - t\nhttp: {listen: nope}\n"), {{"PGFERRY_SOURCE", "postgresql://u:hunter2@h/db"}});
  EXPECT_EQ(from_env.find("hunter2"), std::string::npos) << from_env;
}

TEST(Config, LoadsFromPgferryConfigOrTheEnvironmentAlone) {
  auto none = load_config("", {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().kind, ErrorKind::Config);
  EXPECT_NE(none.error().fix.find("PGFERRY_CONFIG"), std::string::npos);

  auto env_only = load_config(
      "", {{"PGFERRY_SOURCE", "dbname=a"}, {"PGFERRY_TARGET", "dbname=b"}, {"PGFERRY_TABLES", "[public.users]"}});
  ASSERT_TRUE(env_only.ok()) << env_only.error().describe();
  EXPECT_EQ(env_only->origin, "environment");

  auto missing = load_config("", {{"PGFERRY_CONFIG", "/nonexistent/from_env.yaml"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().describe().find("/nonexistent/from_env.yaml"), std::string::npos);
}

}  // namespace
}  // namespace pgferry
