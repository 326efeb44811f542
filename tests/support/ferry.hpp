#pragma once
// Runs `pgferry run` (or any long-lived pgferry command) in the background for tests that
// replicate: start it, signal it, kill -9 it, read its log, and wait for the target to converge.

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "support/pg_client.hpp"

namespace pgferry::test {

/// One background pgferry process; its stdout and stderr go to a log file. SIGKILLed and reaped
/// on destruction if it is still running.
class FerryProcess {
 public:
  /// Starts `pgferry args...` with the current environment plus `env`, stdin from /dev/null.
  FerryProcess(const std::vector<std::string>& args, std::string log_path,
               const std::map<std::string, std::string>& env = {});
  ~FerryProcess();
  FerryProcess(const FerryProcess&) = delete;
  FerryProcess& operator=(const FerryProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  /// Whether the process is still running (reaps it if it has exited).
  bool running();
  /// Sends `sig` (no-op when it has exited).
  void signal(int sig);
  /// Waits up to `timeout_ms` for the process to exit; returns its exit code (128 + signal when
  /// killed by one), or -1 if it is still running.
  int wait(int timeout_ms);
  /// SIGTERM, then wait up to `timeout_ms`; SIGKILL after that. Returns the exit code.
  int stop(int timeout_ms = 60000);
  /// SIGKILL and reap: the crash the replicator must survive.
  void kill9();
  /// Peak resident set size in KiB (VmHWM) while running, else the last value read; 0 if unknown.
  long peak_rss_kb();
  /// Everything the process has written so far.
  [[nodiscard]] std::string log() const;

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  long last_peak_kb_ = 0;
  std::string log_path_;
};

/// Polls `condition` every 50 ms until it returns true or `timeout_ms` passes. Returns whether it
/// became true. Exceptions from `condition` (e.g. a table that does not exist yet) count as false.
bool eventually(const std::function<bool()>& condition, int timeout_ms);

/// An md5 over the rows `select_sql` returns, each row taken as its text form, in the order of
/// `order_by` (e.g. "id"). Equal on source and target iff the rows are equal value for value.
/// Example: digest(db, "SELECT id, name, status FROM public.users", "id").
std::string digest(PgClient& db, const std::string& select_sql, const std::string& order_by);

}  // namespace pgferry::test
