// What operators see of `pgferry run`: the Prometheus metrics on /metrics follow a scripted run
// (changes by table and op, one latency observation per transaction, the backlog while the
// target is down, reconnects, sync errors and their resolution, a stopped table), /readyz flips
// with the target, /healthz answers while a 1,000,000-row batch applies, `pgferry status` reads
// the running instance, and no log line carries a password. Real source and target servers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hpp"
#include "status.hpp"
#include "support/ferry.hpp"
#include "support/fixture.hpp"

namespace pgferry::test {
namespace {

constexpr const char* kItems = "CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int, note text)";
constexpr const char* kFast =
    "reconnect: {initial_delay: 20ms, max_delay: 300ms}\n"
    "health: {check_interval: 100ms}\n";

/// A free loopback port (the kernel's choice; closed again for the caller to bind).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error("free_port: no socket");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

/// A real Prometheus server (Debian's `prometheus` package) scraping one pgferry every second
/// and evaluating the shipped alert rules every second, with every `for:` cut to 0s (the
/// expressions and thresholds stay the shipped ones). Killed and reaped on destruction.
class Prometheus {
 public:
  Prometheus(const std::string& dir, const std::string& pgferry_address) : dir_(dir) {
    std::ifstream in(std::string(PGFERRY_SOURCE_DIR) + "/deploy/prometheus/alerts.yml");
    std::stringstream rules;
    rules << in.rdbuf();
    if (rules.str().empty()) throw std::runtime_error("deploy/prometheus/alerts.yml is missing");
    std::ofstream(dir + "/alerts.yml") << std::regex_replace(rules.str(), std::regex(R"(\bfor: *\S+)"), "for: 0s");
    std::ofstream(dir + "/prometheus.yml") << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                                           << "rule_files: [alerts.yml]\n"
                                           << "scrape_configs:\n  - job_name: pgferry\n"
                                           << "    static_configs: [{targets: ['" << pgferry_address << "']}]\n";
    port_ = free_port();
    const std::string log = dir + "/prometheus.log";
    std::vector<std::string> args{"prometheus", "--config.file=" + dir + "/prometheus.yml",
                                  "--storage.tsdb.path=" + dir + "/data",
                                  "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"};
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::execvp("prometheus", argv.data());
      static constexpr char kMessage[] = "prometheus not found: run scripts/install-deps (package prometheus)\n";
      (void)!::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
      ::_exit(127);
    }
  }
  ~Prometheus() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  Prometheus(const Prometheus&) = delete;
  Prometheus& operator=(const Prometheus&) = delete;

  [[nodiscard]] std::string log() const {
    std::ifstream in(dir_ + "/prometheus.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return "\n---- prometheus log ----\n" + ss.str();
  }

  /// Whether Prometheus has scraped pgferry (its build_info is queryable).
  bool scraped() {
    auto r = http_get("127.0.0.1:" + std::to_string(port_), "/api/v1/query?query=pgferry_build_info",
                      std::chrono::seconds(2));
    return r && r->status == 200 && r->body.find("pgferry_build_info") != std::string::npos;
  }

  /// The firing alerts, each as "Name{label=value,...}" with the labels in `keep` only.
  std::set<std::string> firing(const std::vector<std::string>& keep = {"conn", "table", "severity"}) {
    auto r = http_get("127.0.0.1:" + std::to_string(port_), "/api/v1/alerts", std::chrono::seconds(2));
    if (!r || r->status != 200) throw std::runtime_error("prometheus /api/v1/alerts did not answer");
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(r->body).get(root) != simdjson::SUCCESS) throw std::runtime_error("bad JSON: " + r->body);
    std::set<std::string> out;
    for (simdjson::dom::element alert : root["data"]["alerts"].get_array()) {
      if (std::string_view(alert["state"].get_string()) != "firing") continue;
      std::string name(std::string_view(alert["labels"]["alertname"].get_string()));
      std::string labels;
      for (const auto& k : keep) {
        std::string_view v;
        if (alert["labels"][k].get_string().get(v) == simdjson::SUCCESS) {
          labels += (labels.empty() ? "" : ",") + k + "=" + std::string(v);
        }
      }
      out.insert(name + "{" + labels + "}");
    }
    return out;
  }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

std::string joined(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : " ") + x;
  return out.empty() ? "(none)" : out;
}

class Observability : public ReplicationTest {
 protected:
  void TearDown() override {
    // A test that failed half-way may leave the target stopped; the next test needs it.
    if (!cluster_pair().target->running()) cluster_pair().target->start_again();
    ReplicationTest::TearDown();
  }

  std::string address() { return "127.0.0.1:" + std::to_string(ferry().http_port()); }

  HttpResponse get(const std::string& path) {
    auto r = http_get(address(), path, std::chrono::seconds(5));
    if (!r) throw std::runtime_error(r.error().describe());
    return *r;
  }

  /// The value of the series `name` whose labels include every one of `labels` (summed over
  /// the series that match); -1 when none does.
  double metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    const std::string text = get("/metrics").body;
    std::istringstream in(text);
    std::string line;
    double sum = 0;
    bool found = false;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      const auto brace = line.find('{');
      const auto space = line.rfind(' ');
      const std::string series = line.substr(0, std::min(brace, space));
      if (series != name) continue;
      const std::string label_text = brace == std::string::npos ? "" : line.substr(brace, line.find('}') - brace);
      const bool match = std::all_of(labels.begin(), labels.end(), [&](const auto& kv) {
        return label_text.find(kv.first + "=\"" + kv.second + "\"") != std::string::npos;
      });
      if (!match) continue;
      found = true;
      sum += std::stod(line.substr(space + 1));
    }
    return found ? sum : -1;
  }

  /// Waits (bounded) until metric(name, labels) == want; fails the test showing the last value.
  bool metric_becomes(const std::string& name, const std::map<std::string, std::string>& labels, double want,
                      int timeout_ms = 30000) {
    double last = -2;
    const bool ok = eventually(
        [&] {
          last = metric(name, labels);
          return last == want;
        },
        timeout_ms);
    if (!ok) ADD_FAILURE() << name << " stayed " << last << ", expected " << want << log();
    return ok;
  }

  status::Snapshot readiness() {
    auto s = status::from_json(get("/status").body);
    if (!s) throw std::runtime_error(s.error().describe());
    return *s;
  }
};

TEST_F(Observability, MetricsFollowAScriptedRun) {
  on_both(kItems);
  on_both("CREATE TABLE public.other (id int PRIMARY KEY, v text)");
  // Rows from before capture: the initial copy brings them, counted per table.
  source().exec("INSERT INTO other SELECT g, 'seed' FROM generate_series(1001, 1025) g");
  const auto config = configure("  - public.items\n  - public.other\n", kFast);
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  ASSERT_TRUE(eventually([&] { return get("/readyz").status == 200; }, 30000)) << get("/readyz").body << log();
  EXPECT_EQ(metric("pgferry_build_info", {{"version", PGFERRY_VERSION}}), 1);
  EXPECT_EQ(metric("pgferry_snapshot_rows_total", {{"table", "public.other"}}), 25);
  EXPECT_EQ(metric("pgferry_snapshot_rows_total", {{"table", "public.items"}}), 0);
  EXPECT_EQ(metric("pgferry_snapshot_tables_remaining"), 0);
  for (const char* conn : {"source", "target", "listener"}) {
    EXPECT_TRUE(metric_becomes("pgferry_connection_up", {{"conn", conn}}, 1));
  }
  EXPECT_TRUE(metric_becomes("pgferry_doorbell_armed", {}, 1));
  const double bells_before = metric("pgferry_doorbells_total");

  // Six source transactions: 10 inserts, 5 updates, 2 deletes on items; 3 one-row inserts on other.
  PgClient s = source();
  s.exec("INSERT INTO items SELECT g, 'n', g, NULL FROM generate_series(1, 10) g");
  s.exec("UPDATE items SET qty = qty + 100 WHERE id <= 5");
  s.exec("DELETE FROM items WHERE id > 8");
  for (int id = 1; id <= 3; ++id) s.exec("INSERT INTO other VALUES (" + std::to_string(id) + ", 'v')");
  ASSERT_TRUE(same_tables({"public.items", "public.other"}));
  EXPECT_TRUE(metric_becomes("pgferry_changes_applied_total", {{"table", "public.items"}, {"op", "insert"}}, 10));
  EXPECT_EQ(metric("pgferry_changes_applied_total", {{"table", "public.items"}, {"op", "update"}}), 5);
  EXPECT_EQ(metric("pgferry_changes_applied_total", {{"table", "public.items"}, {"op", "delete"}}), 2);
  EXPECT_EQ(metric("pgferry_changes_applied_total", {{"table", "public.items"}, {"op", "truncate"}}), 0);
  EXPECT_TRUE(metric_becomes("pgferry_changes_applied_total", {{"table", "public.other"}, {"op", "insert"}}, 3));
  // One latency observation per transaction applied, each a sane duration.
  EXPECT_TRUE(metric_becomes("pgferry_transactions_applied_total", {}, 6));
  EXPECT_EQ(metric("pgferry_end_to_end_latency_seconds_count"), 6);
  const double latency_sum = metric("pgferry_end_to_end_latency_seconds_sum");
  EXPECT_GT(latency_sum, 0);
  EXPECT_LT(latency_sum, 6 * 30.0);
  EXPECT_GE(metric("pgferry_batch_rows_sum"), 20);
  EXPECT_GT(metric("pgferry_doorbells_total"), bells_before);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(metric("pgferry_last_applied_timestamp_seconds"), now, 60);
  const auto st = readiness();
  ASSERT_EQ(st.tables.size(), 2U);
  EXPECT_EQ(st.tables[0].phase, "streaming");
  EXPECT_EQ(st.tables[0].rows_applied, 17);
  EXPECT_TRUE(st.ready);

  // The target goes away: the backlog and its age rise, /readyz says why, /healthz stays 200.
  cluster_pair().target->stop();
  s.exec("INSERT INTO items SELECT g, 'down', g, NULL FROM generate_series(100, 149) g");
  EXPECT_TRUE(metric_becomes("pgferry_journal_backlog_rows", {}, 50));
  EXPECT_EQ(metric("pgferry_table_backlog_rows", {{"table", "public.items"}}), 50);
  EXPECT_EQ(metric("pgferry_table_backlog_rows", {{"table", "public.other"}}), 0);
  EXPECT_TRUE(eventually([&] { return metric("pgferry_journal_oldest_change_age_seconds") > 0; }, 10000));
  EXPECT_TRUE(eventually([&] { return metric("pgferry_replication_lag_seconds") > 0; }, 10000));
  EXPECT_NEAR(metric("pgferry_health_last_check_timestamp_seconds"), now, 60);
  EXPECT_TRUE(metric_becomes("pgferry_connection_up", {{"conn", "target"}}, 0));
  HttpResponse ready = get("/readyz");
  EXPECT_EQ(ready.status, 503) << ready.body;
  EXPECT_NE(ready.body.find(R"("name":"target","ok":false)"), std::string::npos) << ready.body;
  EXPECT_EQ(get("/healthz").status, 200);
  EXPECT_GE(metric("pgferry_reconnects_total", {{"conn", "target"}}), 1);
  const auto down = readiness();
  EXPECT_FALSE(down.ready);
  EXPECT_FALSE(down.recommendations.empty());

  cluster_pair().target->start_again();
  EXPECT_TRUE(metric_becomes("pgferry_journal_backlog_rows", {}, 0, 60000));
  EXPECT_TRUE(metric_becomes("pgferry_replication_lag_seconds", {}, 0));
  EXPECT_TRUE(eventually([&] { return get("/readyz").status == 200; }, 30000)) << get("/readyz").body << log();
  EXPECT_TRUE(metric_becomes("pgferry_changes_applied_total", {{"table", "public.items"}, {"op", "insert"}}, 60));

  // pg_terminate_backend of the listener and of the reader: each is counted as a lost connection.
  const double listener_lost =
      std::max(0.0, metric("pgferry_reconnects_total", {{"conn", "listener"}, {"reason", "lost"}}));
  const double source_lost =
      std::max(0.0, metric("pgferry_reconnects_total", {{"conn", "source"}, {"reason", "lost"}}));
  ASSERT_EQ(s.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name IN "
                     "('pgferry listener', 'pgferry reader') AND datname = current_database()"),
            "2");
  s.exec("INSERT INTO items VALUES (500, 'after cut', 1, NULL)");
  EXPECT_TRUE(
      metric_becomes("pgferry_reconnects_total", {{"conn", "listener"}, {"reason", "lost"}}, listener_lost + 1));
  EXPECT_TRUE(metric_becomes("pgferry_reconnects_total", {{"conn", "source"}, {"reason", "lost"}}, source_lost + 1));
  ASSERT_TRUE(same_tables({"public.items"}));
  for (const char* conn : {"source", "listener"}) {
    EXPECT_TRUE(metric_becomes("pgferry_connection_up", {{"conn", conn}}, 1));
  }
}

TEST_F(Observability, SyncErrorsFollowAPoisonRowAndItsResolution) {
  on_both(kItems);
  target().exec("ALTER TABLE items ADD CONSTRAINT no_seven CHECK (qty <> 7)");
  const auto config = configure("  - public.items\n", kFast);
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  EXPECT_TRUE(metric_becomes("pgferry_sync_errors_open", {{"table", "public.items"}}, 0));

  PgClient s = source();
  s.exec("INSERT INTO items VALUES (1, 'ok', 1, NULL), (2, 'poison', 7, NULL), (3, 'ok', 3, NULL)");
  EXPECT_TRUE(metric_becomes("pgferry_sync_errors_open", {{"table", "public.items"}}, 1));
  EXPECT_EQ(metric("pgferry_sync_errors_total", {{"table", "public.items"}, {"class", "quarantine_row"}}), 1);
  EXPECT_EQ(metric("pgferry_changes_applied_total", {{"table", "public.items"}, {"op", "insert"}}), 2);
  const auto st = readiness();
  ASSERT_TRUE(st.open_sync_errors.has_value());
  EXPECT_EQ(*st.open_sync_errors, 1);
  EXPECT_EQ(st.tables.at(0).open_errors, 1);
  EXPECT_TRUE(std::any_of(st.recommendations.begin(), st.recommendations.end(),
                          [](const std::string& r) { return r.find("errors list") != std::string::npos; }));
  // Not a readiness failure: the stream goes on.
  EXPECT_EQ(get("/readyz").status, 200) << get("/readyz").body;

  const auto id = dst().scalar("SELECT id FROM pgferry.sync_errors WHERE NOT resolved");
  const auto resolved = pgferry("errors", config, {"resolve", id, "--note", "dropped on purpose"});
  ASSERT_EQ(resolved.exit_code, 0) << resolved.all();
  EXPECT_TRUE(metric_becomes("pgferry_sync_errors_open", {{"table", "public.items"}}, 0));
}

TEST_F(Observability, AStoppedTableShowsInMetricsReadyzAndStatus) {
  on_both(kItems);
  on_both("CREATE TABLE public.other (id int PRIMARY KEY, v text)");
  const auto config = configure("  - public.items\n  - public.other\n", kFast);
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  ASSERT_TRUE(eventually([&] { return get("/readyz").status == 200; }, 30000)) << get("/readyz").body;
  const std::map<std::string, std::string> env{{"PGFERRY_HTTP_LISTEN", address()}, {"PGFERRY_LOG_FORMAT", "text"}};
  const auto healthy = run_pgferry({"status", "-c", config}, env);
  EXPECT_EQ(healthy.exit_code, 0) << healthy.all();
  EXPECT_NE(healthy.out.find("public.items"), std::string::npos) << healthy.out;

  target().exec("ALTER TABLE items DROP COLUMN note");
  source().exec("INSERT INTO items VALUES (1, 'n', 1, 'x')");
  EXPECT_TRUE(metric_becomes("pgferry_table_stopped", {{"table", "public.items"}}, 1));
  EXPECT_EQ(metric("pgferry_table_stopped", {{"table", "public.other"}}), 0);
  EXPECT_EQ(metric("pgferry_sync_errors_total", {{"table", "public.items"}, {"class", "stop_table"}}), 1);
  // Its change waits in the journal on purpose: that table's lag grows, the replication lag (of
  // the tables that stream) does not, so /readyz fails on the stopped table only.
  EXPECT_TRUE(eventually([&] { return metric("pgferry_table_lag_seconds", {{"table", "public.items"}}) > 0; }, 10000));
  EXPECT_EQ(metric("pgferry_table_backlog_rows", {{"table", "public.items"}}), 1);
  EXPECT_EQ(metric("pgferry_replication_lag_seconds"), 0);
  const auto ready = get("/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("public.items"), std::string::npos) << ready.body;
  EXPECT_NE(ready.body.find(R"("name":"lag","ok":true)"), std::string::npos) << ready.body;

  const auto json = run_pgferry({"status", "-c", config, "--json"}, env);
  EXPECT_EQ(json.exit_code, 1) << json.all();
  auto parsed = status::from_json(json.out);
  ASSERT_TRUE(parsed) << json.out;
  EXPECT_EQ(parsed->origin, "instance");
  EXPECT_FALSE(parsed->ready);
  ASSERT_EQ(parsed->tables.size(), 2U);
  EXPECT_EQ(parsed->tables[0].source, "public.items");
  EXPECT_EQ(parsed->tables[0].phase, "stopped");
  EXPECT_NE(parsed->tables[0].reason.find("note"), std::string::npos) << parsed->tables[0].reason;
  EXPECT_EQ(parsed->tables[1].phase, "streaming");
  const auto text = run_pgferry({"status", "-c", config}, env);
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_NE(text.out.find("stopped"), std::string::npos) << text.out;

  target().exec("ALTER TABLE items ADD COLUMN note text");
  const auto id = dst().scalar("SELECT id FROM pgferry.sync_errors WHERE NOT resolved AND error_class = 'stop_table'");
  ASSERT_EQ(pgferry("errors", config, {"retry", id}).exit_code, 0);
  EXPECT_TRUE(metric_becomes("pgferry_table_stopped", {{"table", "public.items"}}, 0));
  EXPECT_TRUE(eventually([&] { return get("/readyz").status == 200; }, 30000)) << get("/readyz").body;
  EXPECT_EQ(run_pgferry({"status", "-c", config}, env).exit_code, 0);
}

// The issue's bar: a Prometheus server scraping pgferry with the shipped rules fires on the
// failure modes the resilience tests inject, and stays quiet otherwise. (Alerts that need minutes
// of history — stale, backlog growing — are covered by promtool's rule tests.)
TEST_F(Observability, ShippedAlertsFireOnInjectedFailuresAndStayQuietOtherwise) {
  on_both(kItems);
  on_both("CREATE TABLE public.other (id int PRIMARY KEY, v text)");
  target().exec("ALTER TABLE items ADD CONSTRAINT no_seven CHECK (qty <> 7)");
  const auto config = configure("  - public.items\n  - public.other\n", kFast);
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  Prometheus prom(dir_.path(), address());
  ASSERT_TRUE(eventually([&] { return prom.scraped(); }, 60000)) << prom.log();

  // Healthy, with writes flowing: nothing fires over several evaluations.
  PgClient s = source();
  for (int i = 1; i <= 50; ++i) {
    s.exec("INSERT INTO items VALUES (" + std::to_string(i) + ", 'n', " + std::to_string(i + 100) + ", NULL)");
    if (i % 10 == 0) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  ASSERT_TRUE(same_tables({"public.items"}));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(joined(prom.firing()), "(none)") << prom.log();
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }

  // A poison row.
  s.exec("INSERT INTO items VALUES (1000, 'poison', 7, NULL)");
  std::set<std::string> now;
  EXPECT_TRUE(eventually(
      [&] { return (now = prom.firing()).contains("PgferrySyncErrorsOpen{table=public.items,severity=warning}"); },
      30000))
      << joined(now) << prom.log();

  // The target goes away for longer than the lag threshold (30 s).
  cluster_pair().target->stop();
  s.exec("INSERT INTO other VALUES (1, 'while down')");
  EXPECT_TRUE(eventually(
      [&] { return (now = prom.firing()).contains("PgferryConnectionDown{conn=target,severity=critical}"); }, 30000))
      << joined(now) << prom.log();
  EXPECT_TRUE(eventually([&] { return (now = prom.firing()).contains("PgferryLagHigh{severity=warning}"); }, 60000))
      << joined(now) << prom.log();
  cluster_pair().target->start_again();
  EXPECT_TRUE(eventually(
      [&] {
        now = prom.firing();
        return !now.contains("PgferryConnectionDown{conn=target,severity=critical}") &&
               !now.contains("PgferryLagHigh{severity=warning}");
      },
      60000))
      << joined(now) << prom.log();

  // A table whose target broke.
  target().exec("ALTER TABLE other DROP COLUMN v");
  s.exec("INSERT INTO other VALUES (2, 'after the drop')");
  EXPECT_TRUE(eventually(
      [&] { return (now = prom.firing()).contains("PgferryTableStopped{table=public.other,severity=critical}"); },
      30000))
      << joined(now) << prom.log();
}

// Before the worker has read table_state (the target was never reachable) every table counts
// toward the lag: a replicator that cannot start must not report "no lag".
TEST_F(Observability, ATargetDownFromTheStartStillShowsTheLag) {
  on_both(kItems);
  const auto config = configure("  - public.items\n", kFast);
  source().exec("INSERT INTO items VALUES (1, 'a', 1, NULL)");
  cluster_pair().target->stop();
  start(config);
  EXPECT_TRUE(eventually([&] { return metric("pgferry_replication_lag_seconds") > 0; }, 30000)) << log();
  const auto st = readiness();
  EXPECT_FALSE(st.ready);
  ASSERT_EQ(st.tables.size(), 1U);
  EXPECT_EQ(st.tables[0].phase, "starting");
  EXPECT_EQ(get("/healthz").status, 200);
  EXPECT_EQ(get("/readyz").status, 503);
  cluster_pair().target->start_again();
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 60000)) << log();
  EXPECT_TRUE(eventually([&] { return get("/readyz").status == 200; }, 30000)) << get("/readyz").body << log();
}

TEST_F(Observability, HealthzAnswersFastWhileAMillionRowBatchApplies) {
  on_both("CREATE TABLE public.big (id int PRIMARY KEY, v int)");
  const auto config =
      configure("  - public.big\n", std::string(kFast) + "batch: {max_rows: 1000000, max_bytes: 1GB}\n");
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  source().exec("INSERT INTO big SELECT g, g FROM generate_series(1, 1000000) g");
  // Ask while the batch is read, coalesced and applied (until the target has the rows).
  std::vector<double> ms;
  int failures = 0;
  PgClient d = target();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (d.scalar("SELECT count(*) FROM big") != "1000000" && std::chrono::steady_clock::now() < deadline) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = http_get(address(), "/healthz", std::chrono::seconds(5));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (!r || r->status != 200) ++failures;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(d.scalar("SELECT count(*) FROM big"), "1000000") << log();
  EXPECT_EQ(failures, 0);
  ASSERT_GE(ms.size(), 5U) << "the batch applied too fast to ask /healthz during it";
  std::sort(ms.begin(), ms.end());
  // The spec is 100 ms; the median must meet it even here, the slowest answer (a scheduler
  // hiccup on a 2-core machine running a sanitizer build) must stay well inside the loop's 1 s.
  EXPECT_LT(ms[ms.size() / 2], 100.0);
  EXPECT_LT(ms.back(), 1000.0);
  EXPECT_TRUE(metric_becomes("pgferry_transactions_applied_total", {}, 1));
  EXPECT_EQ(metric("pgferry_batch_rows_count"), 1);
}

TEST_F(Observability, LogLinesNeverContainThePassword) {
  on_both(kItems);
  const std::string secret = "Sup3r-Secret-Pw";
  // Trust authentication ignores the password; it is in every conninfo pgferry handles.
  const std::string config =
      dir_.write("pgferry.yaml", "source: \"" + source_conninfo() + " password=" + secret +
                                     "\"\ntarget: \"postgresql://postgres:" + secret +
                                     "@127.0.0.1:" + std::to_string(cluster_pair().target->port()) + "/" + db_ +
                                     "\"\ntables:\n  - public.items\n" + kFast);
  ASSERT_EQ(pgferry("setup", config).exit_code, 0);
  ferry_ = std::make_unique<FerryProcess>(
      std::vector<std::string>{"run", "-c", config, "--log-format", "json", "--log-level", "debug"},
      dir_.path() + "/run.log");
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  source().exec("INSERT INTO items VALUES (1, 'a', 1, NULL)");
  ASSERT_TRUE(same_tables({"public.items"}));
  // Connection failures are where connection strings get quoted.
  cluster_pair().target->stop();
  source().exec("INSERT INTO items VALUES (2, 'b', 2, NULL)");
  ASSERT_TRUE(eventually([&] { return logged("target (applier) connection lost"); }, 30000)) << log();
  const std::string status_body = get("/status").body;
  cluster_pair().target->start_again();
  ASSERT_TRUE(same_tables({"public.items"}));
  EXPECT_EQ(ferry().stop(), 0);
  const std::string text = ferry().log();
  EXPECT_EQ(text.find(secret), std::string::npos) << text;
  EXPECT_EQ(status_body.find(secret), std::string::npos) << status_body;
  // The test saw connection strings in the log (else it proves nothing).
  EXPECT_NE(text.find("****"), std::string::npos) << text;
  for (const char* command : {"check", "status"}) {
    const auto r = pgferry(command, config);
    EXPECT_EQ(r.all().find(secret), std::string::npos) << command << ": " << r.all();
  }
}

}  // namespace
}  // namespace pgferry::test
