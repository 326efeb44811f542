#include "support/ferry.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace pgferry::test {

FerryProcess::FerryProcess(const std::vector<std::string>& args, std::string log_path,
                           const std::map<std::string, std::string>& env)
    : log_path_(std::move(log_path)) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) merged[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
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
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execve(c_argv[0], c_argv.data(), c_env.data());
    ::_exit(127);
  }
  ::close(log_fd);
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

std::string FerryProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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
  return db.scalar("SELECT coalesce(md5(string_agg(md5(r::text), '' ORDER BY " + order_by + ")), 'empty') || ':' || count(*) FROM (" +
                   select_sql + ") r");
}

}  // namespace pgferry::test
