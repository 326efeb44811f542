#pragma once
// What the replicator tells operators: Prometheus metrics (docs/METRICS.md, names are an
// interface) and the state /status and /readyz report. Every part of `run` — the loop's
// listener, the worker, the sweep, the health monitor — writes here; the HTTP server reads.
// Every member is safe to call from any thread; none blocks on I/O.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "status.hpp"

namespace pgferry {

/// The connections whose state is reported (label `conn` of the connection metrics).
enum class Conn : unsigned char { Source, Target, Listener };
[[nodiscard]] std::string_view conn_name(Conn c) noexcept;

/// Why a connection is being re-established (label `reason` of pgferry_reconnects_total).
enum class ReconnectReason : unsigned char {
  Lost,           // the server closed it or the network failed (pg_terminate_backend, restart)
  Heartbeat,      // the listener's heartbeat got no answer (half-open TCP)
  ConnectFailed,  // a connection attempt failed while it was down
};
[[nodiscard]] std::string_view reason_name(ReconnectReason r) noexcept;

/// The per-table series, created once per configured table (label `table`: the source name).
struct TableSeries {
  prometheus::Counter* inserts = nullptr;
  prometheus::Counter* updates = nullptr;
  prometheus::Counter* deletes = nullptr;
  prometheus::Counter* truncates = nullptr;
  prometheus::Counter* snapshot_rows = nullptr;
  prometheus::Counter* sweep_repaired = nullptr;
  prometheus::Gauge* stopped = nullptr;
  prometheus::Gauge* errors_open = nullptr;
  prometheus::Gauge* backlog_rows = nullptr;  // pgferry_table_backlog_rows
  prometheus::Gauge* lag = nullptr;           // pgferry_table_lag_seconds
};

class Telemetry {
  // First: the metric references below point into it (members are built in declaration order).
  std::shared_ptr<prometheus::Registry> registry_;

 public:
  Telemetry();
  Telemetry(const Telemetry&) = delete;
  Telemetry& operator=(const Telemetry&) = delete;

  /// Declares the configured tables (source display names, and their targets): their series and
  /// their /status rows exist from the start, at zero / phase "pending".
  void set_tables(const std::vector<std::pair<std::string, std::string>>& source_and_target);

  /// The series of one configured table (created on first use for a name set_tables did not
  /// know, so a caller never gets nullptr).
  TableSeries& table(const std::string& source);

  // --- metrics without labels ---
  prometheus::Counter& transactions_applied;
  prometheus::Histogram& latency;         // pgferry_end_to_end_latency_seconds
  prometheus::Histogram& apply_duration;  // pgferry_apply_duration_seconds
  prometheus::Histogram& batch_rows;      // pgferry_batch_rows
  prometheus::Gauge& backlog_rows;
  prometheus::Gauge& oldest_change_age;
  prometheus::Gauge& replication_lag;  // the oldest change of a streaming table
  prometheus::Gauge& journal_bytes;
  prometheus::Gauge& last_applied;  // unix seconds
  prometheus::Counter& doorbells;
  prometheus::Gauge& doorbell_armed;
  prometheus::Counter& doorbell_disarms;
  prometheus::Gauge& notify_queue_usage;
  prometheus::Histogram& sweep_duration;
  prometheus::Gauge& sweep_last_duration;
  prometheus::Gauge& sweep_interval;
  prometheus::Gauge& snapshot_tables_remaining;
  prometheus::Gauge& last_check;  // pgferry_health_last_check_timestamp_seconds

  /// pgferry_sync_errors_total{table,class}.
  void sync_error(const std::string& table, std::string_view error_class, double n = 1);

  /// A connection came up / went down (pgferry_connection_up, /status connections).
  void connection_up(Conn c);
  /// Down: `error` says why, `retry_in` when the next attempt starts; `reason` counts
  /// pgferry_reconnects_total (pass nothing for an attempt that is not a reconnect: the first).
  void connection_down(Conn c, std::string error, std::chrono::milliseconds retry_in,
                       std::optional<ReconnectReason> reason);

  /// A table's phase for /status (starting | pending | snapshotting | streaming | stopped; starting
  /// until the worker read table_state), with the reason
  /// when stopped; pgferry_table_stopped follows it.
  void table_phase(const std::string& source, std::string phase, std::string reason = {});
  /// Rows applied to a table by a batch that committed at `unix_seconds`.
  void table_applied(const std::string& source, std::int64_t rows, double unix_seconds);

  /// A sweep ended (`duration`), having repaired `rows` rows in all.
  void sweep_done(double started_unix, double duration_seconds, std::int64_t rows);

  /// The health monitor's measurement (journal on the source, sync_errors on the target).
  struct TableBacklog {
    std::int64_t rows = 0;
    double oldest_age = 0;  // seconds, source clock
  };
  struct Measured {
    std::optional<std::int64_t> backlog_rows;
    std::optional<double> oldest_change_age;
    /// By source display name; a table without rows in the journal is absent.
    std::optional<std::map<std::string, TableBacklog>> backlog_by_table;
    std::optional<std::int64_t> journal_bytes;
    std::optional<double> notify_queue_usage;
    std::optional<std::int64_t> open_errors;
    std::map<std::string, std::int64_t> open_errors_by_table;  // source display name -> open rows
  };
  void measured(const Measured& m, const std::vector<std::string>& extra_recommendations);

  /// The state /status serves (evaluated: checks, ready, recommendations).
  /// The lag counts as unknown when measured longer than `stale_after` ago.
  [[nodiscard]] status::Snapshot snapshot(double max_lag_seconds, std::chrono::milliseconds stale_after) const;

  /// The Prometheus text exposition of every metric.
  [[nodiscard]] std::string serialize() const;

 private:
  using Clock = std::chrono::steady_clock;
  /// pgferry_replication_lag_seconds (and lag_) from the last measured backlog per table and the
  /// tables' current phases. Holds mu_; measured_.backlog_by_table is set.
  void publish_lag_locked();
  struct ConnState {
    bool known = false;
    bool up = false;
    std::string error;
    Clock::time_point down_since{};
    Clock::time_point next_retry{};
  };

  prometheus::Family<prometheus::Counter>& changes_family_;
  prometheus::Family<prometheus::Counter>& sync_errors_family_;
  prometheus::Family<prometheus::Gauge>& errors_open_family_;
  prometheus::Family<prometheus::Gauge>& stopped_family_;
  prometheus::Family<prometheus::Counter>& snapshot_rows_family_;
  prometheus::Family<prometheus::Counter>& sweep_repaired_family_;
  prometheus::Family<prometheus::Gauge>& connection_up_family_;
  prometheus::Family<prometheus::Counter>& reconnects_family_;
  prometheus::Family<prometheus::Gauge>& table_backlog_family_;
  prometheus::Family<prometheus::Gauge>& table_lag_family_;

  mutable std::mutex mu_;
  Clock::time_point started_ = Clock::now();
  std::map<std::string, TableSeries> series_;
  std::vector<status::Table> tables_;  // in configuration order
  std::map<Conn, ConnState> conns_;
  status::Sweep sweep_;
  Measured measured_;
  std::optional<double> lag_;  // known once the source was measured
  Clock::time_point lag_measured_{};
  std::vector<std::string> recommendations_;
};

}  // namespace pgferry
