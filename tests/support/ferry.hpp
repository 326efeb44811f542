#pragma once
// Runs `pgferry run` (or any long-lived pgferry command) in the background for tests that
// replicate: start it, signal it, kill -9 it, read its log, and wait for the target to converge.

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "support/fixture.hpp"
#include "support/pg_client.hpp"

namespace pgferry::test {

/// One background pgferry process; its stdout and stderr go to a log file. SIGKILLed and reaped
/// on destruction if it is still running, and SIGKILLed by the kernel if the test process dies
/// without destructors (PR_SET_PDEATHSIG; start it from the thread that outlives it).
class FerryProcess {
 public:
  /// Where its stderr (the log) goes: to the log file, or into a pipe whose reading end is closed
  /// before the process starts, so every write to it fails (EPIPE), as when the process that
  /// collected the log went away. stdout goes to the log file either way.
  enum class Stderr { kLogFile, kBrokenPipe };
  /// Starts `pgferry args...` with the current environment plus `env`, stdin from /dev/null.
  FerryProcess(const std::vector<std::string>& args, std::string log_path,
               const std::map<std::string, std::string>& env = {}, Stderr stderr_to = Stderr::kLogFile);
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
  /// The HTTP port it serves /metrics etc. on (waits up to `timeout_ms` for the log line that
  /// names it; the latest start's line when the log holds several). 0 if it never said.
  [[nodiscard]] int http_port(int timeout_ms = 30000) const;
  /// Everything the process has written so far.
  [[nodiscard]] std::string log() const;
  /// Whether its log holds `text` so far.
  [[nodiscard]] bool logged(const std::string& text) const;
  /// The counts of its last stop line, "stopped: N batches (M read while the one before was
  /// applied), ...": {N, M}; {-1, -1} when the log has none.
  [[nodiscard]] std::pair<long, long> stop_counts() const;

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

/// The same rows on both sides: `source_sql` on the source, `target_sql` on the target, ordered
/// by `key` (a column, or columns, both selects return).
struct Comparison {
  std::string source_sql;
  std::string target_sql;
  std::string key = "id";
};

/// A whole table, same name and columns on both sides.
Comparison whole(const std::string& table, const std::string& key = "id");

/// Base for tests that replicate: setup, a background `pgferry run`, and bounded waits until the
/// target equals the source, with failure messages that show what differs and the run's log.
class ReplicationTest : public SourceTargetTest {
 protected:
  /// Stops a running replicator (expecting exit 0); prints its log if the test failed.
  void TearDown() override;

  /// Writes the config (tables block + extra YAML) and runs `pgferry setup`; returns the path.
  std::string configure(const std::string& tables_yaml, const std::string& extra_yaml = "");
  /// Starts `pgferry run -c config --log-format text` in the background (SIGKILLing one still
  /// running); every start of a test appends to one log file, so a failure shows the whole story.
  FerryProcess& start(const std::string& config);
  /// The running (or last) replicator.
  FerryProcess& ferry() { return *ferry_; }
  /// The end of the replicator's log (its last 150 lines), headed for a failure message ("" before
  /// the first start). ferry().log() is the whole log; TearDown prints it when the test failed.
  [[nodiscard]] std::string log() const;
  /// Whether the log contains `text` (the replicator says what it does in whole sentences).
  [[nodiscard]] bool logged(const std::string& text) const;

  /// Source and target connections with pinned output settings (time zone, date and interval
  /// style, float digits, bytea format): a value's text form then depends only on the value.
  [[nodiscard]] PgClient src() const;
  [[nodiscard]] PgClient dst() const;

  /// Whether the source journal is empty and every table streams with no copy pending.
  [[nodiscard]] bool caught_up() const;
  /// Waits (bounded) until the doorbell is armed (pgferry.doorbell = 1): a running replicator
  /// that has caught up arms it.
  [[nodiscard]] bool bell_armed(int timeout_ms = 10000) const;
  /// Waits (bounded) until caught_up() and the digests of every comparison are equal.
  bool converges(const std::vector<Comparison>& comparisons, int timeout_ms = 60000);
  /// What differs, row by row (first rows only), plus the journal, table_state and the log.
  [[nodiscard]] std::string differences(const std::vector<Comparison>& comparisons) const;
  /// converges(), and on failure a test failure showing differences().
  bool same(const std::vector<Comparison>& comparisons, int timeout_ms = 60000);
  /// same() over whole tables ordered by `key`.
  bool same_tables(const std::vector<std::string>& tables, const std::string& key = "id", int timeout_ms = 60000);

  /// `threads` writers, each committing `per_thread` one-row INSERTs into `table` (columns id,
  /// name, qty, note) as fast as it can, ids from `first_id` on. A writer's error fails the test.
  void write_load(const std::string& table, int threads, int per_thread, int first_id);

  std::unique_ptr<FerryProcess> ferry_;
  int starts_ = 0;
};

}  // namespace pgferry::test
