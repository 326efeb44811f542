#include "monitor.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "pg.hpp"
#include "telemetry.hpp"

namespace pgferry {

struct HealthMonitor::Connections {
  std::optional<Session> source;
  std::optional<Session> target;
  bool source_warned = false;
  bool target_warned = false;
  bool journal_warned = false;  // a failing query is logged once, until it works again
  bool errors_warned = false;
};

namespace {

// Per table: rows waiting and the age of the oldest, on the source's clock. One pass over the
// journal (it holds only what is still to apply): ~0.2 s for a 1,000,000-row backlog, every
// health.check_interval. Exact, because an estimate would hide a backlog that just began.
constexpr const char* kJournal = R"(
SELECT c.source_table, count(*), extract(epoch FROM clock_timestamp() - min(j.captured_at))::float8
FROM pgferry.journal j JOIN pgferry.captured_table c ON c.id = j.table_id
GROUP BY c.source_table)";

constexpr const char* kJournalSize = "SELECT pg_total_relation_size('pgferry.journal'), pg_notification_queue_usage()";

constexpr const char* kOpenErrors =
    "SELECT source_table, count(*) FROM pgferry.sync_errors WHERE NOT resolved GROUP BY source_table";

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Connects `slot` if needed; logs a failure once until it works again (the worker's own
/// connections say more; this one only measures).
Session* session(std::optional<Session>& slot, const std::string& conninfo, const char* side, bool& warned) {
  if (slot && slot->alive()) return &*slot;
  slot.reset();
  auto s = Session::connect(conninfo, side, "pgferry health");
  if (!s) {
    if (!warned) {
      spdlog::warn("health monitor: cannot reach the {} (retrying every health.check_interval): {}", side,
                   s.error().describe());
    }
    warned = true;
    return nullptr;
  }
  warned = false;
  slot.emplace(std::move(*s));
  return &*slot;
}

}  // namespace

Result<JournalMeasure> measure_journal(Session& source) {
  auto r = source.exec(kJournal);
  if (!r) return std::move(r).error();
  auto size = source.exec(kJournalSize);
  if (!size) return std::move(size).error();
  JournalMeasure m;
  for (int i = 0; i < PQntuples(r->get()); ++i) {
    auto& t = m.by_table[PQgetvalue(r->get(), i, 0)];
    t.rows = std::strtoll(PQgetvalue(r->get(), i, 1), nullptr, 10);
    t.oldest_age = std::max(0.0, std::strtod(PQgetvalue(r->get(), i, 2), nullptr));
    m.rows += t.rows;
    m.oldest_age = std::max(m.oldest_age, t.oldest_age);
  }
  m.bytes = std::strtoll(PQgetvalue(size->get(), 0, 0), nullptr, 10);
  m.notify_queue_usage = std::strtod(PQgetvalue(size->get(), 0, 1), nullptr);
  return m;
}

HealthMonitor::HealthMonitor(const Config& config, Telemetry& telemetry)
    : config_(config), telemetry_(telemetry), conns_(std::make_unique<Connections>()) {}

HealthMonitor::~HealthMonitor() { stop(); }

void HealthMonitor::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void HealthMonitor::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HealthMonitor::run() {
  for (;;) {
    measure();
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, config_.health.check_interval, [&] { return stop_; })) break;
  }
  conns_.reset();
}

void HealthMonitor::measure() {
  Telemetry::Measured m;
  std::vector<std::string> recommendations;
  // captured_table and sync_errors name tables quoted ("public"."users"); metrics and /status
  // by display name.
  std::map<std::string, std::string> display;
  for (const auto& t : config_.tables) display[t.source.quoted()] = t.source.display();
  const auto name_of = [&](const std::string& quoted) {
    const auto it = display.find(quoted);
    return it == display.end() ? quoted : it->second;
  };
  if (Session* src = session(conns_->source, config_.source, "source", conns_->source_warned)) {
    auto j = measure_journal(*src);
    if (j) {
      std::map<std::string, Telemetry::TableBacklog> by_table;
      for (const auto& [quoted, t] : j->by_table) by_table[name_of(quoted)] = {t.rows, t.oldest_age};
      m.backlog_rows = j->rows;
      m.oldest_change_age = j->oldest_age;
      m.backlog_by_table = std::move(by_table);
      m.journal_bytes = j->bytes;
      m.notify_queue_usage = j->notify_queue_usage;
      conns_->journal_warned = false;
      trend_.add(now_seconds(), *m.backlog_rows);
      if (const double growing = trend_.growing_for(); growing >= 600) {
        recommendations.push_back(fmt::format(
            "journal backlog growing for {:.0f} min (now {} rows): the target applies slower than the source writes; "
            "look at the target's load, locks and indexes, and at pgferry_apply_duration_seconds",
            growing / 60, *m.backlog_rows));
      }
    } else {
      if (!std::exchange(conns_->journal_warned, true)) {
        spdlog::warn("health monitor: cannot measure the journal: {}", j.error().describe());
      }
      conns_->source.reset();
    }
  }
  if (Session* dst = session(conns_->target, config_.target, "target", conns_->target_warned)) {
    auto r = dst->exec(kOpenErrors);
    if (r) {
      std::int64_t total = 0;
      for (int i = 0; i < PQntuples(r->get()); ++i) {
        const auto n = std::strtoll(PQgetvalue(r->get(), i, 1), nullptr, 10);
        total += n;
        m.open_errors_by_table[name_of(PQgetvalue(r->get(), i, 0))] += n;
      }
      m.open_errors = total;
      conns_->errors_warned = false;
    } else {
      if (!std::exchange(conns_->errors_warned, true)) {
        spdlog::warn("health monitor: cannot count open sync errors: {}", r.error().describe());
      }
      conns_->target.reset();
    }
  }
  telemetry_.measured(m, recommendations);
}

}  // namespace pgferry
