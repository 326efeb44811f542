#include "telemetry.hpp"

#include <fmt/format.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>

namespace pgferry {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

// Latencies from a millisecond to minutes (a replicator that was down for a while applies old
// changes: those land in the top buckets instead of +Inf).
const Histogram::BucketBoundaries kLatencyBuckets = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                     0.5,    1,     2.5,   5,     10,   30,    60,   300, 900};
const Histogram::BucketBoundaries kApplyBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25,   0.5,   1,      2.5,   5,    10,    30,   120};
const Histogram::BucketBoundaries kRowsBuckets = {1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000};
const Histogram::BucketBoundaries kSweepBuckets = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};

template <typename T>
prometheus::Family<T>& family(prometheus::detail::Builder<T> b, prometheus::Registry& r, const char* name,
                              const char* help) {
  return b.Name(name).Help(help).Register(r);
}

}  // namespace

std::string_view conn_name(Conn c) noexcept {
  switch (c) {
    case Conn::Source:
      return "source";
    case Conn::Target:
      return "target";
    case Conn::Listener:
      return "listener";
  }
  return "unknown";
}

std::string_view reason_name(ReconnectReason r) noexcept {
  switch (r) {
    case ReconnectReason::Lost:
      return "lost";
    case ReconnectReason::Heartbeat:
      return "heartbeat";
    case ReconnectReason::ConnectFailed:
      return "connect_failed";
  }
  return "unknown";
}

namespace {

// The registry is built before the reference members that point into it.
std::shared_ptr<prometheus::Registry> new_registry() {
  auto r = std::make_shared<prometheus::Registry>();
  family(BuildGauge(), *r, "pgferry_build_info", "pgferry's version; always 1")
      .Add({{"version", PGFERRY_VERSION}})
      .Set(1);
  return r;
}

}  // namespace

Telemetry::Telemetry()
    : registry_(new_registry()),
      transactions_applied(family(BuildCounter(), *registry_, "pgferry_transactions_applied_total",
                                  "Source transactions applied to the target")
                               .Add({})),
      latency(family(BuildHistogram(), *registry_, "pgferry_end_to_end_latency_seconds",
                     "Per source transaction: source commit to target commit, on the source's clock")
                  .Add({}, kLatencyBuckets)),
      apply_duration(family(BuildHistogram(), *registry_, "pgferry_apply_duration_seconds",
                            "Per batch: from BEGIN on the target to the journal acknowledged on the source")
                         .Add({}, kApplyBuckets)),
      batch_rows(family(BuildHistogram(), *registry_, "pgferry_batch_rows", "Journal rows per applied batch")
                     .Add({}, kRowsBuckets)),
      backlog_rows(family(BuildGauge(), *registry_, "pgferry_journal_backlog_rows",
                          "Committed journal rows not yet applied (measured every health.check_interval)")
                       .Add({})),
      oldest_change_age(family(BuildGauge(), *registry_, "pgferry_journal_oldest_change_age_seconds",
                               "Age of the oldest journal row, on the source's clock, of any table (stopped ones and "
                               "ones awaiting their initial copy included; 0 when the journal is empty)")
                            .Add({})),
      replication_lag(family(BuildGauge(), *registry_, "pgferry_replication_lag_seconds",
                             "The replication lag: age of the oldest journal row of a streaming table, on the "
                             "source's clock (0 when none waits); /readyz compares it with health.max_lag")
                          .Add({})),
      journal_bytes(family(BuildGauge(), *registry_, "pgferry_journal_bytes",
                           "Size of pgferry.journal on the source, indexes and TOAST included")
                        .Add({})),
      last_applied(family(BuildGauge(), *registry_, "pgferry_last_applied_timestamp_seconds",
                          "Unix time of the last batch committed on the target (the process start until then)")
                       .Add({})),
      doorbells(family(BuildCounter(), *registry_, "pgferry_doorbells_total",
                       "Notifications received on the LISTEN connection")
                    .Add({})),
      doorbell_armed(family(BuildGauge(), *registry_, "pgferry_doorbell_armed",
                            "1 while writers ring the doorbell, 0 while pgferry turned it off (writers commit "
                            "faster than doorbell.off_above transactions a second)")
                         .Add({})),
      doorbell_disarms(family(BuildCounter(), *registry_, "pgferry_doorbell_disarms_total",
                              "Times pgferry turned the doorbell off because writers committed faster than "
                              "doorbell.off_above transactions a second")
                           .Add({})),
      notify_queue_usage(family(BuildGauge(), *registry_, "pgferry_notify_queue_usage_ratio",
                                "pg_notification_queue_usage() on the source: 0 to 1; at 1 every NOTIFY fails")
                             .Add({})),
      sweep_duration(family(BuildHistogram(), *registry_, "pgferry_sweep_duration_seconds",
                            "Duration of each sweep over every table")
                         .Add({}, kSweepBuckets)),
      sweep_last_duration(
          family(BuildGauge(), *registry_, "pgferry_sweep_last_duration_seconds", "Duration of the last sweep")
              .Add({})),
      sweep_interval(family(BuildGauge(), *registry_, "pgferry_sweep_interval_seconds",
                            "sweep.interval (0: no table has updated_at, no sweep runs)")
                         .Add({})),
      snapshot_tables_remaining(family(BuildGauge(), *registry_, "pgferry_snapshot_tables_remaining",
                                       "Tables waiting for or in their initial copy")
                                    .Add({})),
      last_check(family(BuildGauge(), *registry_, "pgferry_health_last_check_timestamp_seconds",
                        "Unix time the journal was last measured on the source (the backlog and lag gauges "
                        "are that old)")
                     .Add({})),
      changes_family_(family(BuildCounter(), *registry_, "pgferry_changes_applied_total",
                             "Journal rows applied to the target, by table and operation")),
      sync_errors_family_(family(BuildCounter(), *registry_, "pgferry_sync_errors_total",
                                 "Changes filed into pgferry.sync_errors, by table and error class (a held-back change "
                                 "updates its key's open row)")),
      errors_open_family_(
          family(BuildGauge(), *registry_, "pgferry_sync_errors_open", "Unresolved rows in pgferry.sync_errors")),
      stopped_family_(family(BuildGauge(), *registry_, "pgferry_table_stopped",
                             "1 while a table is stopped (its changes wait in the journal)")),
      snapshot_rows_family_(
          family(BuildCounter(), *registry_, "pgferry_snapshot_rows_total", "Rows copied by initial copies")),
      sweep_repaired_family_(family(BuildCounter(), *registry_, "pgferry_sweep_rows_repaired_total",
                                    "Rows the sweep found different on the target and repaired")),
      connection_up_family_(family(BuildGauge(), *registry_, "pgferry_connection_up",
                                   "1 while the connection is up (source: reader, target: applier, listener: LISTEN)")),
      reconnects_family_(family(BuildCounter(), *registry_, "pgferry_reconnects_total",
                                "Connections lost or attempts failed, each followed by a reconnect attempt")),
      table_backlog_family_(
          family(BuildGauge(), *registry_, "pgferry_table_backlog_rows", "Journal rows of this table not yet applied")),
      table_lag_family_(family(BuildGauge(), *registry_, "pgferry_table_lag_seconds",
                               "Age of this table's oldest journal row, on the source's clock (0 when none)")) {
  last_applied.Set(unix_now());
  // Every series exists from the start at 0: rate() and increase() then see the first event.
  for (const Conn c : {Conn::Source, Conn::Target, Conn::Listener}) {
    connection_up_family_.Add({{"conn", std::string(conn_name(c))}}).Set(0);
    for (const auto r : {ReconnectReason::Lost, ReconnectReason::Heartbeat, ReconnectReason::ConnectFailed}) {
      reconnects_family_.Add({{"conn", std::string(conn_name(c))}, {"reason", std::string(reason_name(r))}});
    }
  }
}

void Telemetry::set_tables(const std::vector<std::pair<std::string, std::string>>& source_and_target) {
  for (const auto& names : source_and_target) {
    (void)table(names.first);
    std::lock_guard lock(mu_);
    for (auto& t : tables_) {
      if (t.source == names.first) t.target = names.second;
    }
  }
}

TableSeries& Telemetry::table(const std::string& source) {
  std::lock_guard lock(mu_);
  auto it = series_.find(source);
  if (it != series_.end()) return it->second;
  TableSeries s;
  const auto op = [&](const char* name) { return &changes_family_.Add({{"table", source}, {"op", name}}); };
  s.inserts = op("insert");
  s.updates = op("update");
  s.deletes = op("delete");
  s.truncates = op("truncate");
  s.snapshot_rows = &snapshot_rows_family_.Add({{"table", source}});
  s.sweep_repaired = &sweep_repaired_family_.Add({{"table", source}});
  s.stopped = &stopped_family_.Add({{"table", source}});
  s.errors_open = &errors_open_family_.Add({{"table", source}});
  s.backlog_rows = &table_backlog_family_.Add({{"table", source}});
  s.lag = &table_lag_family_.Add({{"table", source}});
  for (const char* cls : {"quarantine_row", "held_back", "stop_table", "mass_delete"}) {
    sync_errors_family_.Add({{"table", source}, {"class", cls}});
  }
  status::Table t;
  t.source = source;
  t.target = source;
  t.phase = "starting";  // until the worker has read table_state: counts toward the lag
  tables_.push_back(std::move(t));
  return series_.emplace(source, s).first->second;
}

void Telemetry::sync_error(const std::string& table, std::string_view error_class, double n) {
  sync_errors_family_.Add({{"table", table}, {"class", std::string(error_class)}}).Increment(n);
}

void Telemetry::connection_up(Conn c) {
  connection_up_family_.Add({{"conn", std::string(conn_name(c))}}).Set(1);
  std::lock_guard lock(mu_);
  auto& s = conns_[c];
  s.known = true;
  s.up = true;
  s.error.clear();
}

void Telemetry::connection_down(Conn c, std::string error, std::chrono::milliseconds retry_in,
                                std::optional<ReconnectReason> reason) {
  connection_up_family_.Add({{"conn", std::string(conn_name(c))}}).Set(0);
  if (reason) {
    reconnects_family_.Add({{"conn", std::string(conn_name(c))}, {"reason", std::string(reason_name(*reason))}})
        .Increment();
  }
  std::lock_guard lock(mu_);
  auto& s = conns_[c];
  const auto now = Clock::now();
  if (!s.known || s.up) s.down_since = now;
  s.known = true;
  s.up = false;
  s.error = std::move(error);
  s.next_retry = now + retry_in;
}

void Telemetry::table_phase(const std::string& source, std::string phase, std::string reason) {
  auto& series = table(source);
  const bool stopped = phase == "stopped";
  {
    std::lock_guard lock(mu_);
    for (auto& t : tables_) {
      if (t.source != source) continue;
      t.phase = std::move(phase);
      t.reason = std::move(reason);
      break;  // names are unique
    }
    // A table that stops (or resumes) leaves (or joins) the replication lag now, not at the next
    // measurement.
    if (measured_.backlog_by_table) publish_lag_locked();
  }
  series.stopped->Set(stopped ? 1 : 0);
}

void Telemetry::publish_lag_locked() {
  // The lag is that of the tables that stream: a stopped table's or a copying table's rows wait
  // on purpose (their own alerts say so).
  double lag = 0;
  for (const auto& t : tables_) {
    if (t.phase != "streaming" && t.phase != "starting") continue;
    const auto it = measured_.backlog_by_table->find(t.source);
    if (it != measured_.backlog_by_table->end()) lag = std::max(lag, it->second.oldest_age);
  }
  replication_lag.Set(lag);
  lag_ = lag;
}

void Telemetry::table_applied(const std::string& source, std::int64_t rows, double unix_seconds) {
  (void)table(source);
  std::lock_guard lock(mu_);
  for (auto& t : tables_) {
    if (t.source != source) continue;
    t.rows_applied += rows;
    t.last_applied_unix = unix_seconds;
  }
}

void Telemetry::sweep_done(double started_unix, double duration_seconds, std::int64_t rows) {
  sweep_duration.Observe(duration_seconds);
  sweep_last_duration.Set(duration_seconds);
  std::lock_guard lock(mu_);
  sweep_.last_started_unix = started_unix;
  sweep_.last_duration_seconds = duration_seconds;
  sweep_.rows_repaired = rows;
}

void Telemetry::measured(const Measured& m, const std::vector<std::string>& extra_recommendations) {
  if (m.backlog_rows) backlog_rows.Set(static_cast<double>(*m.backlog_rows));
  if (m.oldest_change_age) oldest_change_age.Set(*m.oldest_change_age);
  if (m.journal_bytes) journal_bytes.Set(static_cast<double>(*m.journal_bytes));
  if (m.notify_queue_usage) notify_queue_usage.Set(*m.notify_queue_usage);
  std::vector<std::string> names;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, s] : series_) names.push_back(name);
  }
  if (m.backlog_by_table) {
    for (const auto& name : names) {
      const auto it = m.backlog_by_table->find(name);
      const TableBacklog b = it == m.backlog_by_table->end() ? TableBacklog{} : it->second;
      auto& series = table(name);
      series.backlog_rows->Set(static_cast<double>(b.rows));
      series.lag->Set(b.oldest_age);
    }
    last_check.Set(unix_now());
    std::lock_guard lock(mu_);
    measured_.backlog_by_table = m.backlog_by_table;
    publish_lag_locked();
    lag_measured_ = Clock::now();
  }
  if (m.open_errors) {
    for (const auto& name : names) {
      const auto it = m.open_errors_by_table.find(name);
      table(name).errors_open->Set(it == m.open_errors_by_table.end() ? 0 : static_cast<double>(it->second));
    }
  }
  std::lock_guard lock(mu_);
  // What was not measurable this time (a database down) keeps its last value.
  if (m.backlog_rows) measured_.backlog_rows = m.backlog_rows;
  if (m.oldest_change_age) measured_.oldest_change_age = m.oldest_change_age;
  if (m.journal_bytes) measured_.journal_bytes = m.journal_bytes;
  if (m.notify_queue_usage) measured_.notify_queue_usage = m.notify_queue_usage;
  if (m.open_errors) {
    measured_.open_errors = m.open_errors;
    measured_.open_errors_by_table = m.open_errors_by_table;
    for (auto& t : tables_) {
      const auto it = m.open_errors_by_table.find(t.source);
      t.open_errors = it == m.open_errors_by_table.end() ? 0 : it->second;
    }
  }
  recommendations_ = extra_recommendations;
}

status::Snapshot Telemetry::snapshot(double max_lag_seconds, std::chrono::milliseconds stale_after) const {
  status::Snapshot s;
  s.version = PGFERRY_VERSION;
  s.origin = "instance";
  s.max_lag_seconds = max_lag_seconds;
  s.last_applied_unix = last_applied.Value();
  s.sweep.interval_seconds = sweep_interval.Value();
  {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    s.uptime_seconds = std::chrono::duration<double>(now - started_).count();
    s.backlog_rows = measured_.backlog_rows;
    s.oldest_change_age_seconds = measured_.oldest_change_age;
    s.lag_seconds = lag_;
    if (lag_ && now - lag_measured_ > stale_after) {
      // An old measurement is no measurement: the lag may have grown since.
      s.lag_seconds.reset();
      s.recommendations.push_back(
          fmt::format("the journal was last measured {:.0f} s ago: the health monitor cannot query the source (see "
                      "the log)",
                      std::chrono::duration<double>(now - lag_measured_).count()));
    }
    s.journal_bytes = measured_.journal_bytes;
    s.notify_queue_usage = measured_.notify_queue_usage;
    s.open_sync_errors = measured_.open_errors;
    const double interval = *s.sweep.interval_seconds;
    s.sweep = sweep_;
    s.sweep.interval_seconds = interval > 0 ? std::optional<double>(interval) : std::nullopt;
    for (const Conn c : {Conn::Source, Conn::Target, Conn::Listener}) {
      status::Connection out;
      out.name = std::string(conn_name(c));
      const auto it = conns_.find(c);
      if (it == conns_.end() || !it->second.known) {
        out.error = "not connected yet";
      } else {
        out.up = it->second.up;
        out.error = it->second.error;
        if (!out.up) {
          out.down_seconds = std::chrono::duration<double>(now - it->second.down_since).count();
          out.next_retry_seconds = std::max(0.0, std::chrono::duration<double>(it->second.next_retry - now).count());
        }
      }
      s.connections.push_back(std::move(out));
    }
    s.tables = tables_;
    s.recommendations = recommendations_;
  }
  status::evaluate(s);
  return s;
}

std::string Telemetry::serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace pgferry
