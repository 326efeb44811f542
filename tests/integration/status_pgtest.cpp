// `pgferry status` against two real servers. Each test's http.listen names a port nobody listens
// on, so status falls back to reading both databases (journal backlog, table phases, open sync
// errors) and says not ready; a tiny HTTP server thread in the test stands in for a running
// `pgferry run` answering /status.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "status.hpp"
#include "support/fixture.hpp"

namespace pgferry::test {
namespace {

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "missing: " << (needle) << "\nin:\n" << (haystack)

constexpr const char* kUsers = "CREATE TABLE public.users (id int PRIMARY KEY, name text)";
constexpr const char* kOrders = "CREATE TABLE public.orders (id int PRIMARY KEY, total int)";
constexpr const char* kTables = "  - public.users\n  - public.orders\n";
constexpr const char* kUsersQ = R"("public"."users")";
constexpr const char* kOrdersQ = R"("public"."orders")";

/// A listening TCP socket on 127.0.0.1 with a port the kernel picked.
int listen_on_free_port(int& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot listen on 127.0.0.1:0");
  }
  port = ntohs(addr.sin_port);
  return fd;
}

/// A port on 127.0.0.1 that nothing listens on: picked by the kernel, then released.
int free_port() {
  int port = 0;
  ::close(listen_on_free_port(port));
  return port;
}

/// Stands in for a running `pgferry run`: answers every connection with `response` (raw bytes,
/// status line included) and remembers the requests it read.
class FakeInstance {
 public:
  explicit FakeInstance(std::string response) : response_(std::move(response)), fd_(listen_on_free_port(port_)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeInstance() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  FakeInstance(const FakeInstance&) = delete;
  FakeInstance& operator=(const FakeInstance&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::vector<std::string> requests() const {
    const std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        pollfd q{client, POLLIN, 0};
        if (::poll(&q, 1, 5000) <= 0) break;
        const auto n = ::recv(client, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      {
        const std::lock_guard lock(mutex_);
        requests_.push_back(request);
      }
      for (std::size_t sent = 0; sent < response_.size();) {
        const auto n = ::send(client, response_.data() + sent, response_.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
      ::close(client);
    }
  }

  std::string response_;
  int port_ = 0;
  int fd_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

std::string http_200(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

/// The same answer with chunked transfer coding, in chunks of 100 bytes.
std::string http_200_chunked(const std::string& body) {
  std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::size_t i = 0; i < body.size(); i += 100) {
    const std::string part = body.substr(i, 100);
    out += fmt::format("{:x}\r\n{}\r\n", part.size(), part);
  }
  return out + "0\r\n\r\n";
}

/// What a healthy running replicator serves on /status.
status::Snapshot instance_snapshot(double lag_seconds) {
  status::Snapshot s;
  s.version = "0.1.0";
  s.origin = "instance";
  s.uptime_seconds = 3 * 3600 + 12 * 60;
  s.lag_seconds = lag_seconds;
  s.backlog_rows = 4;
  s.oldest_change_age_seconds = lag_seconds;
  s.journal_bytes = 16 << 20;
  s.notify_queue_usage = 0;
  s.open_sync_errors = 0;
  for (const char* name : {"source", "target", "listener"}) {
    status::Connection c;
    c.name = name;
    c.up = true;
    s.connections.push_back(c);
  }
  status::Table users;
  users.source = users.target = "public.fake_users";
  users.phase = "streaming";
  users.rows_applied = 1234;
  s.tables.push_back(users);
  status::evaluate(s);
  return s;
}

class Status : public SourceTargetTest {
 protected:
  /// Both tables on both sides, a config whose http.listen nobody answers on, and setup done.
  std::string set_up() {
    on_both(kUsers);
    on_both(kOrders);
    std::string config = config_listening_on(free_port());
    const auto setup = pgferry("setup", config);
    EXPECT_EQ(setup.exit_code, 0) << setup.all();
    return config;
  }

  std::string config_listening_on(int port) const {
    return write_config(kTables, "http: {listen: \"127.0.0.1:" + std::to_string(port) + "\"}\n");
  }

  /// `status --json`, expecting `exit_code`; the parsed snapshot.
  status::Snapshot status_json(const std::string& config, int exit_code) const {
    const auto r = pgferry("status", config, {"--json"});
    EXPECT_EQ(r.exit_code, exit_code) << r.all();
    auto s = status::from_json(r.out);
    if (!s) {
      ADD_FAILURE() << s.error().describe() << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err;
      return {};
    }
    return std::move(*s);
  }

  void add_error(const std::string& source_table, bool resolved) const {
    target().query(
        "INSERT INTO pgferry.sync_errors (source_table, target_table, op, row_key, error_class, message, resolved) "
        "VALUES ($1, $1, 'U', '{\"id\": 1}', 'quarantine_row', 'new row violates check constraint', $2::boolean)",
        {source_table, resolved ? "true" : "false"});
  }
};

const status::Table* find_table(const status::Snapshot& s, const std::string& name) {
  const auto it =
      std::find_if(s.tables.begin(), s.tables.end(), [&](const status::Table& t) { return t.source == name; });
  return it == s.tables.end() ? nullptr : &*it;
}

const status::Check* find_check(const status::Snapshot& s, const std::string& name) {
  const auto it =
      std::find_if(s.checks.begin(), s.checks.end(), [&](const status::Check& c) { return c.name == name; });
  return it == s.checks.end() ? nullptr : &*it;
}

const status::Connection* find_connection(const status::Snapshot& s, const std::string& name) {
  const auto it = std::find_if(s.connections.begin(), s.connections.end(),
                               [&](const status::Connection& c) { return c.name == name; });
  return it == s.connections.end() ? nullptr : &*it;
}

// ---------------------------------------------------------------------------------------------
// No running pgferry: read from the databases

TEST_F(Status, WithoutAnInstanceReadsBothDatabasesAndIsNotReady) {
  const std::string config = set_up();
  source().exec("INSERT INTO public.users VALUES (1, 'a'), (2, 'b'), (3, 'c')");
  source().exec("INSERT INTO public.orders VALUES (1, 10); UPDATE public.orders SET total = 11 WHERE id = 1");
  const auto journal_rows = std::stoll(source().scalar("SELECT count(*) FROM pgferry.journal"));
  ASSERT_EQ(journal_rows, 5);

  const auto s = status_json(config, 1);
  EXPECT_EQ(s.origin, "databases");
  EXPECT_EQ(s.version, "0.1.0");
  EXPECT_FALSE(s.ready);
  EXPECT_EQ(s.backlog_rows, journal_rows);
  // Both tables await their initial copy: their changes wait on purpose, so the replication lag
  // (that of streaming tables, as `run` reports it) is 0 while the journal's oldest change ages.
  ASSERT_TRUE(s.lag_seconds.has_value());
  EXPECT_EQ(*s.lag_seconds, 0);
  ASSERT_TRUE(s.oldest_change_age_seconds.has_value());
  EXPECT_GT(*s.oldest_change_age_seconds, 0);
  EXPECT_LT(*s.oldest_change_age_seconds, 120);
  target().exec("UPDATE pgferry.table_state SET status = 'streaming'");
  const auto streaming = status_json(config, 1);
  ASSERT_TRUE(streaming.lag_seconds.has_value());
  EXPECT_GT(*streaming.lag_seconds, 0);
  EXPECT_LT(*streaming.lag_seconds, 120);
  target().exec("UPDATE pgferry.table_state SET status = 'pending'");
  ASSERT_TRUE(s.journal_bytes.has_value());
  EXPECT_GT(*s.journal_bytes, 0);
  ASSERT_TRUE(s.notify_queue_usage.has_value());
  EXPECT_EQ(s.open_sync_errors, 0);
  EXPECT_EQ(s.max_lag_seconds, 30);
  ASSERT_EQ(s.tables.size(), 2U);
  for (const char* name : {"public.users", "public.orders"}) {
    const auto* t = find_table(s, name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->target, name);
    EXPECT_EQ(t->phase, "pending");
    EXPECT_EQ(t->open_errors, 0);
  }
  for (const char* name : {"source", "target"}) {
    const auto* c = find_connection(s, name);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_TRUE(c->up) << c->error;
    EXPECT_TRUE(find_check(s, name)->ok);
  }
  EXPECT_TRUE(find_check(s, "tables")->ok);
  EXPECT_TRUE(find_check(s, "lag")->ok) << find_check(s, "lag")->detail;
  const auto* instance = find_check(s, "instance");
  ASSERT_NE(instance, nullptr);
  EXPECT_FALSE(instance->ok);
  EXPECT_CONTAINS(instance->detail, "no pgferry run answers on http://127.0.0.1:");
  EXPECT_CONTAINS(instance->detail, "/status: nothing listens on");

  // An empty journal: no backlog, no lag.
  source().exec("DELETE FROM pgferry.journal");
  const auto empty = status_json(config, 1);
  EXPECT_EQ(empty.backlog_rows, 0);
  EXPECT_EQ(empty.lag_seconds, 0.0);
}

TEST_F(Status, TextModeNamesTheTablesAndSaysNotReady) {
  const std::string config = set_up();
  source().exec("INSERT INTO public.users VALUES (1, 'a'), (2, 'b')");
  const auto r = pgferry("status", config);
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_EQ(r.out.rfind("pgferry 0.1.0: NOT READY (read from the databases: no pgferry run answers on", 0), 0U)
      << r.out;
  EXPECT_CONTAINS(r.out, "backlog 2 rows");
  EXPECT_CONTAINS(r.out, "connections: source up · target up");
  EXPECT_CONTAINS(r.out, "TABLE");
  EXPECT_CONTAINS(r.out, "public.users");
  EXPECT_CONTAINS(r.out, "public.orders");
  EXPECT_CONTAINS(r.out, "pending");
  EXPECT_CONTAINS(r.out, "not ready: instance: no pgferry run answers on");
  EXPECT_CONTAINS(r.out, "start `pgferry run`");
  // The columns line up: PHASE starts at the same offset on the header and on each table's line.
  const auto header = r.out.find("TABLE");
  const auto header_end = r.out.find('\n', header);
  const auto phase = r.out.find("PHASE", header) - header;
  for (const char* name : {"public.users", "public.orders"}) {
    const auto line = r.out.find(name, header_end);
    ASSERT_NE(line, std::string::npos);
    EXPECT_EQ(r.out.find("pending", line) - line, phase) << r.out;
  }
}

TEST_F(Status, AStoppedTableShowsItsReasonAndFailsTheTablesCheck) {
  const std::string config = set_up();
  target().query(
      "UPDATE pgferry.table_state SET status = 'stopped', stop_reason = 'test reason' WHERE source_table = $1",
      {kOrdersQ});
  target().query(
      "UPDATE pgferry.table_state SET status = 'streaming', rows_applied = 42, last_applied_at = now() "
      "WHERE source_table = $1",
      {kUsersQ});
  const auto s = status_json(config, 1);
  const auto* orders = find_table(s, "public.orders");
  ASSERT_NE(orders, nullptr);
  EXPECT_EQ(orders->phase, "stopped");
  EXPECT_EQ(orders->reason, "test reason");
  const auto* users = find_table(s, "public.users");
  ASSERT_NE(users, nullptr);
  EXPECT_EQ(users->phase, "streaming");
  EXPECT_EQ(users->reason, "");
  EXPECT_EQ(users->rows_applied, 42);
  ASSERT_TRUE(users->last_applied_unix.has_value());
  EXPECT_NEAR(*users->last_applied_unix, static_cast<double>(std::time(nullptr)), 120);
  EXPECT_EQ(s.last_applied_unix, users->last_applied_unix);
  const auto* tables = find_check(s, "tables");
  ASSERT_NE(tables, nullptr);
  EXPECT_FALSE(tables->ok);
  EXPECT_EQ(tables->detail, "stopped: public.orders (test reason)");

  const auto text = pgferry("status", config);
  EXPECT_EQ(text.exit_code, 1) << text.all();
  EXPECT_CONTAINS(text.out, "not ready: tables: stopped: public.orders (test reason)");
  EXPECT_CONTAINS(text.out, "streaming");
  EXPECT_CONTAINS(text.out, "s ago");
}

TEST_F(Status, CountsOpenSyncErrorsPerTable) {
  const std::string config = set_up();
  add_error(kUsersQ, false);
  add_error(kUsersQ, false);
  add_error(kUsersQ, true);  // resolved: not counted
  add_error(kOrdersQ, false);
  add_error(R"("public"."gone")", false);  // a table no longer configured: in the total only
  const auto s = status_json(config, 1);
  EXPECT_EQ(find_table(s, "public.users")->open_errors, 2);
  EXPECT_EQ(find_table(s, "public.orders")->open_errors, 1);
  EXPECT_EQ(s.open_sync_errors, 4);
  EXPECT_NE(std::find_if(s.recommendations.begin(), s.recommendations.end(),
                         [](const std::string& r) { return r.find("4 open sync error(s)") != std::string::npos; }),
            s.recommendations.end());
  const auto text = pgferry("status", config);
  EXPECT_CONTAINS(text.out, "open sync errors 4");
}

TEST_F(Status, AnUnreachableSourceStillShowsWhatTheTargetSays) {
  set_up();
  target().query("UPDATE pgferry.table_state SET status = 'streaming' WHERE source_table = $1", {kUsersQ});
  const int closed = free_port();
  const std::string config =
      dir_.write("down.yaml", "source: \"host=127.0.0.1 port=" + std::to_string(closed) +
                                  " dbname=x user=u password=hunter2-secret connect_timeout=3\"\n"
                                  "target: \"" +
                                  target_conninfo() + "\"\ntables:\n" + kTables +
                                  "http: {listen: \"127.0.0.1:" + std::to_string(free_port()) + "\"}\n");
  const auto r = pgferry("status", config, {"--json"});
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_EQ(r.all().find("hunter2-secret"), std::string::npos) << r.all();
  auto parsed = status::from_json(r.out);
  ASSERT_TRUE(parsed) << parsed.error().describe() << "\n" << r.all();
  const auto& s = *parsed;
  const auto* source = find_connection(s, "source");
  ASSERT_NE(source, nullptr);
  EXPECT_FALSE(source->up);
  EXPECT_CONTAINS(source->error, std::to_string(closed));
  EXPECT_FALSE(find_check(s, "source")->ok);
  EXPECT_TRUE(find_connection(s, "target")->up);
  EXPECT_TRUE(find_check(s, "target")->ok);
  EXPECT_FALSE(s.backlog_rows.has_value());
  EXPECT_FALSE(s.lag_seconds.has_value());
  EXPECT_EQ(find_table(s, "public.users")->phase, "streaming");
  EXPECT_EQ(find_table(s, "public.orders")->phase, "pending");

  const auto text = pgferry("status", config);
  EXPECT_EQ(text.exit_code, 1) << text.all();
  EXPECT_CONTAINS(text.out, "source down");
  EXPECT_CONTAINS(text.out, "target up");
  EXPECT_CONTAINS(text.out, "not ready: source: not connected");
  EXPECT_CONTAINS(text.out, "backlog -");
}

TEST_F(Status, WithoutSetupSaysToRunIt) {
  on_both(kUsers);
  on_both(kOrders);
  const auto s = status_json(config_listening_on(free_port()), 1);
  EXPECT_TRUE(find_connection(s, "source")->up);
  EXPECT_FALSE(s.backlog_rows.has_value());
  const auto setup_hint = std::count_if(s.recommendations.begin(), s.recommendations.end(), [](const std::string& r) {
    return r.find("run `pgferry setup`") != std::string::npos;
  });
  EXPECT_GE(setup_hint, 2) << status::to_json(s);
}

// ---------------------------------------------------------------------------------------------
// The command line

TEST_F(Status, BadTimeoutExitsTwoNamingTheFlag) {
  const std::string config = config_listening_on(free_port());
  for (const char* value : {"nonsense", "0s", "5"}) {
    const auto r = pgferry("status", config, {"--timeout", value});
    EXPECT_EQ(r.exit_code, 2) << value << "\n" << r.all();
    EXPECT_CONTAINS(r.err, "--timeout");
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST_F(Status, HelpExitsZero) {
  const auto r = run_pgferry({"status", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.all();
  EXPECT_CONTAINS(r.out, "exit 0 only when ready");
  EXPECT_CONTAINS(r.out, "--json");
  EXPECT_CONTAINS(r.out, "--timeout");
  const auto all = run_pgferry({"--help"});
  EXPECT_CONTAINS(all.out, "status");
}

// ---------------------------------------------------------------------------------------------
// A running pgferry answers

TEST_F(Status, AReadyInstanceExitsZero) {
  const auto ready = instance_snapshot(0.2);
  ASSERT_TRUE(ready.ready);
  const FakeInstance instance(http_200(status::to_json(ready)));
  const std::string config = config_listening_on(instance.port());
  const auto s = status_json(config, 0);
  EXPECT_EQ(s.origin, "instance");
  EXPECT_TRUE(s.ready);
  // The instance's own view, not the databases': its table, its uptime, no "instance" check.
  ASSERT_EQ(s.tables.size(), 1U);
  EXPECT_EQ(s.tables[0].source, "public.fake_users");
  EXPECT_EQ(s.uptime_seconds, ready.uptime_seconds);
  EXPECT_EQ(find_check(s, "instance"), nullptr);
  const auto requests = instance.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests[0].rfind("GET /status HTTP/1.1\r\n", 0), 0U) << requests[0];
  EXPECT_CONTAINS(requests[0], "Connection: close\r\n");

  const auto text = pgferry("status", config);
  EXPECT_EQ(text.exit_code, 0) << text.all();
  EXPECT_EQ(text.out.rfind("pgferry 0.1.0: READY (running instance, up 3h12m)\n", 0), 0U) << text.out;
  EXPECT_CONTAINS(text.out, "lag 0.2 s (max 30 s)");
  EXPECT_CONTAINS(text.out, "journal 16.0 MB");
  EXPECT_CONTAINS(text.out, "connections: source up · target up · listener up");
  EXPECT_CONTAINS(text.out, "public.fake_users");
  EXPECT_EQ(text.out.find("not ready"), std::string::npos) << text.out;
}

TEST_F(Status, AChunkedAnswerIsReadToo) {
  const FakeInstance instance(http_200_chunked(status::to_json(instance_snapshot(0.2))));
  const auto s = status_json(config_listening_on(instance.port()), 0);
  EXPECT_EQ(s.origin, "instance");
  EXPECT_EQ(s.tables.size(), 1U);
}

TEST_F(Status, AnInstanceThatIsNotReadyExitsOne) {
  const auto lagging = instance_snapshot(120);
  ASSERT_FALSE(lagging.ready);
  const FakeInstance instance(http_200(status::to_json(lagging)));
  const std::string config = config_listening_on(instance.port());
  const auto s = status_json(config, 1);
  EXPECT_EQ(s.origin, "instance");
  EXPECT_FALSE(s.ready);
  const auto text = pgferry("status", config);
  EXPECT_EQ(text.exit_code, 1) << text.all();
  EXPECT_EQ(text.out.rfind("pgferry 0.1.0: NOT READY (running instance", 0), 0U) << text.out;
  EXPECT_CONTAINS(text.out, "not ready: lag: 120.0 s, above health.max_lag 30 s");
  EXPECT_CONTAINS(text.out, "recommendations:\n  - replication lags");
}

TEST_F(Status, GarbageOnTheStatusPortExitsOneNamingStatus) {
  on_both(kUsers);
  on_both(kOrders);
  const std::vector<std::pair<std::string, std::string>> answers = {
      {http_200("<html>not json</html>"), "not with pgferry's status: unexpected JSON"},
      {http_200(R"({"uptime_seconds": nul})"), "not with pgferry's status"},
      {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "answered HTTP 404"},
      {"SSH-2.0-OpenSSH_9.2\r\n", "the answer is not HTTP"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"version\":", "cut short"},
  };
  for (const auto& [answer, why] : answers) {
    const FakeInstance instance(answer);
    const std::string config = config_listening_on(instance.port());
    const auto r = pgferry("status", config);
    EXPECT_EQ(r.exit_code, 1) << r.all();
    EXPECT_CONTAINS(r.out, "NOT READY (read from the databases");
    EXPECT_CONTAINS(r.out, "http://127.0.0.1:" + std::to_string(instance.port()) + "/status");
    EXPECT_CONTAINS(r.out, why);
    const auto s = status_json(config, 1);
    EXPECT_EQ(s.origin, "databases");
    ASSERT_NE(find_check(s, "instance"), nullptr);
    EXPECT_CONTAINS(find_check(s, "instance")->detail, "/status");
  }
}

TEST_F(Status, AnInstanceThatDoesNotAnswerInTimeIsGivenUpOn) {
  // Accepts, reads the request, and answers only after the client's timeout.
  int port = 0;
  const int fd = listen_on_free_port(port);
  std::thread slow([fd] {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return;
    const int client = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    std::this_thread::sleep_for(std::chrono::seconds(3));
    ::close(client);
  });
  on_both(kUsers);
  on_both(kOrders);
  const auto started = std::chrono::steady_clock::now();
  const auto r = pgferry("status", config_listening_on(port), {"--timeout", "500ms"});
  const auto took = std::chrono::steady_clock::now() - started;
  slow.join();
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_CONTAINS(r.out, "did not answer within 500ms");
  EXPECT_LT(took, std::chrono::milliseconds(2500));
}

}  // namespace
}  // namespace pgferry::test
