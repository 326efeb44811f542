#pragma once
// The replicator's health as one value: what `run` serves on /status and /readyz, and what
// `pgferry status` prints (from a running instance, or read from both databases when none
// answers). Pure: rendering, parsing and the readiness verdict are unit-tested without a server.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"

namespace pgferry::status {

/// One of the replicator's connections: "source" (the reader), "target" (the applier),
/// "listener" (LISTEN on the source).
struct Connection {
  std::string name;
  bool up = false;
  std::string error;                         // the last failure, while down
  std::optional<double> down_seconds;        // how long it has been down
  std::optional<double> next_retry_seconds;  // while down: when the next attempt starts
};

/// One configured table.
struct Table {
  std::string source;  // display name, e.g. public.users
  std::string target;
  std::string phase;   // pending | snapshotting | streaming | stopped
  std::string reason;  // why stopped (empty otherwise)
  std::int64_t open_errors = 0;
  std::int64_t rows_applied = 0;
  std::optional<double> last_applied_unix;  // when a batch of it last committed on the target
};

/// The last sweep of `run`.
struct Sweep {
  std::optional<double> interval_seconds;
  std::optional<double> last_started_unix;
  std::optional<double> last_duration_seconds;
  std::int64_t rows_repaired = 0;  // by the last sweep
};

/// One readiness check: "source", "target", "tables", "lag" (and "instance" when no running
/// pgferry answered `pgferry status`).
struct Check {
  std::string name;
  bool ok = false;
  std::string detail;
};

struct Snapshot {
  std::string version;
  std::string origin = "instance";  // "instance" (a running pgferry) or "databases" (read directly)
  std::optional<double> uptime_seconds;
  double max_lag_seconds = 30;
  /// Replication lag: the age of the oldest change still in the journal, on the source's clock
  /// (0 when the journal is empty). Unknown until measured.
  std::optional<double> lag_seconds;
  std::optional<std::int64_t> backlog_rows;
  std::optional<double> oldest_change_age_seconds;
  std::optional<std::int64_t> journal_bytes;
  std::optional<double> notify_queue_usage;  // pg_notification_queue_usage(), 0..1
  std::optional<std::int64_t> open_sync_errors;
  std::optional<double> last_applied_unix;
  Sweep sweep;
  std::vector<Connection> connections;
  std::vector<Table> tables;
  // Filled by evaluate():
  std::vector<Check> checks;
  bool ready = false;
  std::vector<std::string> recommendations;
};

/// Fills checks, ready and the recommendations that follow from the snapshot alone; keeps
/// recommendations already there (the caller's, from history: a backlog growing for minutes).
/// Ready: source and target connected, no table stopped, lag known and under max_lag.
void evaluate(Snapshot& s);

/// The snapshot as the JSON object /status serves (documented in docs/METRICS.md).
[[nodiscard]] std::string to_json(const Snapshot& s);

/// The JSON of /readyz: {"ready":…, "checks":[…]}.
[[nodiscard]] std::string readiness_json(const Snapshot& s);

/// Parses what to_json() wrote (a running instance's /status).
[[nodiscard]] Result<Snapshot> from_json(std::string_view json);

/// Whether the journal backlog has been growing for at least `window`: fed one sample per
/// measurement, it compares the backlog now with the smallest backlog of the samples taken
/// `window` ago or earlier, and asks that no sample in the window dipped to (near) zero.
class BacklogTrend {
 public:
  explicit BacklogTrend(double window_seconds = 600) : window_(window_seconds) {}
  void add(double at_seconds, std::int64_t rows);
  /// Seconds the backlog has been growing (0 when it is not).
  [[nodiscard]] double growing_for() const;

 private:
  struct Sample {
    double at;
    std::int64_t rows;
  };
  double window_;
  std::vector<Sample> samples_;
};

}  // namespace pgferry::status
