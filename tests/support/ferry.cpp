#include "support/ferry.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

extern char** environ;

namespace pgferry::test {

FerryProcess::FerryProcess(const std::vector<std::string>& args, std::string log_path,
                           const std::map<std::string, std::string>& env, Stderr stderr_to)
    : log_path_(std::move(log_path)) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) merged[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  // Every replicator of every test serves HTTP on a port of its own (port 0: the kernel picks a
  // free one; http_port() reads it from the log), so tests run side by side.
  merged.try_emplace("PGFERRY_HTTP_LISTEN", "127.0.0.1:0");
  for (const auto& [k, v] : env) {
    if (v.empty()) {
      merged.erase(k);
    } else {
      merged[k] = v;
    }
  }
  std::vector<std::string> env_strings;
  env_strings.reserve(merged.size());
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<std::string> argv{PGFERRY_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c_argv;
  c_argv.reserve(argv.size() + 1);
  for (auto& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  std::vector<char*> c_env;
  c_env.reserve(env_strings.size() + 1);
  for (auto& e : env_strings) c_env.push_back(e.data());
  c_env.push_back(nullptr);

  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("open " + log_path_ + ": " + std::strerror(errno));
  int err_fd = log_fd;
  if (stderr_to == Stderr::kBrokenPipe) {
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    ::close(fds[0]);  // nobody will ever read it
    err_fd = fds[1];
  }
  const pid_t test_pid = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    // Die with the test: a test binary that is killed (ctest's timeout, SIGKILL) runs no
    // destructor, and a `pgferry run` left behind would go on retrying its vanished clusters.
    (void)::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != test_pid) ::_exit(127);  // the test died before the line above
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::execve(c_argv[0], c_argv.data(), c_env.data());
    ::_exit(127);
  }
  ::close(log_fd);
  if (err_fd != log_fd) ::close(err_fd);
}

FerryProcess::~FerryProcess() {
  if (pid_ > 0 && exit_code_ < 0) kill9();
}

bool FerryProcess::running() {
  if (pid_ <= 0 || exit_code_ >= 0) return false;
  return wait(0) < 0;
}

void FerryProcess::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

int FerryProcess::wait(int timeout_ms) {
  if (exit_code_ >= 0) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    peak_rss_kb();
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (r < 0 && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int FerryProcess::stop(int timeout_ms) {
  signal(SIGTERM);
  const int code = wait(timeout_ms);
  if (code >= 0) return code;
  kill9();
  return exit_code_;
}

void FerryProcess::kill9() {
  if (pid_ <= 0 || exit_code_ >= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

long FerryProcess::peak_rss_kb() {
  if (pid_ <= 0 || exit_code_ >= 0) return last_peak_kb_;
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      const long kb = std::strtol(line.c_str() + 6, nullptr, 10);
      if (kb > 0) last_peak_kb_ = kb;
    }
  }
  return last_peak_kb_;
}

int FerryProcess::http_port(int timeout_ms) const {
  static const std::string kMarker = "serving /metrics /healthz /readyz /status on http://";
  int port = 0;
  eventually(
      [&] {
        const std::string text = log();
        const auto at = text.rfind(kMarker);
        if (at == std::string::npos) return false;
        const auto colon = text.find(':', at + kMarker.size());
        if (colon == std::string::npos) return false;
        port = std::atoi(text.c_str() + colon + 1);
        return port > 0;
      },
      timeout_ms);
  return port;
}

std::string FerryProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool FerryProcess::logged(const std::string& text) const { return log().find(text) != std::string::npos; }

std::pair<long, long> FerryProcess::stop_counts() const {
  const std::string text = log();
  const auto at = text.rfind(" batches (");
  const auto ahead = text.find(" read while the one before was applied", at);
  if (at == std::string::npos || ahead == std::string::npos) return {-1, -1};
  const auto from = text.rfind(' ', at - 1) + 1;
  const auto open = at + std::string_view(" batches (").size();
  return {std::stol(text.substr(from, at - from)), std::stol(text.substr(open, ahead - open))};
}

bool eventually(const std::function<bool()>& condition, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    try {
      if (condition()) return true;
    } catch (const std::exception&) {
      // Not there yet.
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string digest(PgClient& db, const std::string& select_sql, const std::string& order_by) {
  return db.scalar("SELECT coalesce(md5(string_agg(md5(pgferry_digest_row::text), '' ORDER BY " + order_by +
                   ")), 'empty') || ':' || count(*) FROM (" + select_sql + ") pgferry_digest_row");
}

}  // namespace pgferry::test

namespace pgferry::test {
namespace {

constexpr const char* kSameOutput =
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; "
    "SET extra_float_digits = 1; SET bytea_output = 'hex'";

/// Rows of `sql` by their key's text, each as its row text.
std::map<std::string, std::string> rows_by_key(PgClient& db, const std::string& sql, const std::string& key) {
  std::map<std::string, std::string> out;
  for (const auto& r : db.query("SELECT (" + key + ")::text, pgferry_row::text FROM (" + sql + ") pgferry_row")) {
    out[r[0].value_or("NULL")] = r[1].value_or("NULL");
  }
  return out;
}

}  // namespace

Comparison whole(const std::string& table, const std::string& key) {
  return {"SELECT * FROM " + table, "SELECT * FROM " + table, key};
}

void ReplicationTest::TearDown() {
  if (ferry_ && ferry_->running()) {
    const int code = ferry_->stop(30000);
    EXPECT_EQ(code, 0) << "pgferry run did not stop cleanly" << log();
  }
  if (HasFailure() && ferry_) {
    std::cerr << "\n---- pgferry run log, whole ----\n" << ferry_->log() << "\n-------------------------\n";
  }
}

std::string ReplicationTest::configure(const std::string& tables_yaml, const std::string& extra_yaml) {
  std::string config = write_config(tables_yaml, extra_yaml);
  const CliResult r = pgferry("setup", config);
  EXPECT_EQ(r.exit_code, 0) << r.all();
  return config;
}

FerryProcess& ReplicationTest::start(const std::string& config) {
  if (ferry_ && ferry_->running()) ferry_->kill9();
  ferry_ = std::make_unique<FerryProcess>(std::vector<std::string>{"run", "-c", config, "--log-format", "text"},
                                          dir_.path() + "/run.log");
  ++starts_;
  return *ferry_;
}

std::string ReplicationTest::log() const {
  if (!ferry_) return "";
  // Its end only: a message per failed assertion, and a test with several failing would print a
  // log of hundreds of kilobytes each time (ctest cuts a failed test's output at 1 MB).
  // TearDown prints the whole log once.
  constexpr std::size_t kTailLines = 150;
  const std::string text = ferry_->log();
  std::size_t at = text.size();
  std::size_t lines = 0;
  while (at > 0 && lines <= kTailLines) {
    at = text.rfind('\n', at - 1);
    if (at == std::string::npos) {
      at = 0;
      break;
    }
    ++lines;
  }
  if (at == 0) return "\n---- pgferry run log ----\n" + text;
  return "\n---- pgferry run log (its last " + std::to_string(kTailLines) +
         " lines; the whole log follows when the test ends) ----\n" + text.substr(at + 1);
}

bool ReplicationTest::logged(const std::string& text) const { return ferry_ && ferry_->logged(text); }

PgClient ReplicationTest::src() const {
  PgClient c = source();
  c.exec(kSameOutput);
  return c;
}

PgClient ReplicationTest::dst() const {
  PgClient c = target();
  c.exec(kSameOutput);
  return c;
}

bool ReplicationTest::bell_armed(int timeout_ms) const {
  return eventually([&] { return source().scalar("SELECT last_value FROM pgferry.doorbell") == "1"; }, timeout_ms);
}

bool ReplicationTest::caught_up() const {
  return source().scalar("SELECT count(*) FROM pgferry.journal") == "0" &&
         target().scalar(
             "SELECT count(*) FROM pgferry.table_state WHERE status <> 'streaming' OR copy_snapshot IS "
             "NOT NULL") == "0";
}

bool ReplicationTest::converges(const std::vector<Comparison>& comparisons, int timeout_ms) {
  return eventually(
      [&] {
        if (!caught_up()) return false;
        PgClient s = src();
        PgClient d = dst();
        for (const auto& c : comparisons) {
          if (digest(s, c.source_sql, c.key) != digest(d, c.target_sql, c.key)) return false;
        }
        return true;
      },
      timeout_ms);
}

std::string ReplicationTest::differences(const std::vector<Comparison>& comparisons) const {
  std::string out;
  PgClient s = src();
  PgClient d = dst();
  for (const auto& c : comparisons) {
    const auto a = rows_by_key(s, c.source_sql, c.key);
    const auto b = rows_by_key(d, c.target_sql, c.key);
    out +=
        c.source_sql + ": " + std::to_string(a.size()) + " source rows, " + std::to_string(b.size()) + " target rows\n";
    int shown = 0;
    for (const auto& [k, v] : a) {
      const auto it = b.find(k);
      if (it != b.end() && it->second == v) continue;
      if (++shown > 5) break;
      out += "  key " + k + "\n    source " + v + "\n    target " + (it == b.end() ? "(missing)" : it->second) + "\n";
    }
    for (const auto& [k, v] : b) {
      if (a.count(k) != 0) continue;
      if (++shown > 10) break;
      out += "  key " + k + " only on the target: " + v + "\n";
    }
  }
  out += "journal rows left: " + s.scalar("SELECT count(*) FROM pgferry.journal") + "; table_state: " +
         d.scalar("SELECT string_agg(source_table || '=' || status, ', ') FROM pgferry.table_state");
  return out + log();
}

bool ReplicationTest::same(const std::vector<Comparison>& comparisons, int timeout_ms) {
  if (converges(comparisons, timeout_ms)) return true;
  ADD_FAILURE() << "the target did not converge within " << timeout_ms << " ms:\n" << differences(comparisons);
  return false;
}

bool ReplicationTest::same_tables(const std::vector<std::string>& tables, const std::string& key, int timeout_ms) {
  std::vector<Comparison> comparisons;
  comparisons.reserve(tables.size());
  for (const auto& t : tables) comparisons.push_back(whole(t, key));
  return same(comparisons, timeout_ms);
}

void ReplicationTest::write_load(const std::string& table, int threads, int per_thread, int first_id) {
  std::mutex m;
  std::string error;
  std::vector<std::thread> writers;
  writers.reserve(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      try {
        PgClient c = source();
        for (int i = 0; i < per_thread; ++i) {
          const int id = first_id + t * per_thread + i;
          c.exec("INSERT INTO " + table + " VALUES (" + std::to_string(id) + ", 'load', " + std::to_string(i) +
                 ", NULL)");
        }
      } catch (const std::exception& e) {
        const std::lock_guard<std::mutex> lock(m);
        error = e.what();
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(error, "") << "a writer failed";
}

}  // namespace pgferry::test
