// Metric names are an interface: the names pgferry exports (Telemetry), the ones docs/METRICS.md
// documents, and the ones the alerts (deploy/prometheus/alerts.yml) and the dashboard
// (deploy/grafana/pgferry.json) query must agree, or an alert silently never fires and a panel
// silently stays empty. No server needed: Telemetry serializes its registry in memory.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include "telemetry.hpp"

namespace {

std::string read_source_file(const std::string& relative) {
  const std::string path = std::string(PGFERRY_SOURCE_DIR) + "/" + relative;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path;
    return {};
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// What a Telemetry exports: its text exposition, and the family names of its `# TYPE` lines
/// (histograms apart, for their _bucket/_sum/_count series).
struct Exported {
  std::string text;
  std::set<std::string> families;
  std::set<std::string> histograms;
};

Exported parse_exposition(std::string text) {
  Exported e;
  e.text = std::move(text);
  std::istringstream lines(e.text);
  std::string line;
  while (std::getline(lines, line)) {
    constexpr std::string_view kType = "# TYPE ";
    if (!line.starts_with(kType)) continue;
    std::istringstream words(line.substr(kType.size()));
    std::string name;
    std::string type;
    words >> name >> type;
    e.families.insert(name);
    if (type == "histogram") e.histograms.insert(name);
  }
  return e;
}

/// A Telemetry with one configured table, as `run` starts, before any event: every family has its
/// series from the start (prometheus-cpp leaves a family without series out of the exposition, so
/// the name checks below would also catch a family that appears only at its first event).
Exported at_start() {
  pgferry::Telemetry telemetry;
  telemetry.set_tables({{"public.users", "public.users"}});
  return parse_exposition(telemetry.serialize());
}

bool name_char(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }

bool word_char(char c) { return name_char(c) || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

/// Every `pgferry_[a-z_]+` word in `text` (one not preceded by a letter, digit or underscore).
std::set<std::string> referenced_names(std::string_view text) {
  std::set<std::string> names;
  constexpr std::string_view kPrefix = "pgferry_";
  for (auto at = text.find(kPrefix); at != std::string_view::npos; at = text.find(kPrefix, at + 1)) {
    if (at > 0 && word_char(text[at - 1])) continue;
    auto end = at + kPrefix.size();
    while (end < text.size() && name_char(text[end])) ++end;
    if (end > at + kPrefix.size()) names.emplace(text.substr(at, end - at));
  }
  return names;
}

/// The family a referenced series name belongs to: a histogram's _bucket, _sum and _count series
/// name their family; anything else names itself.
std::string family_of(const std::string& name, const Exported& e) {
  for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (!name.ends_with(suffix)) continue;
    auto base = name.substr(0, name.size() - suffix.size());
    if (e.histograms.contains(base)) return base;
  }
  return name;
}

/// Fails for each name in `file` that pgferry does not export; returns how many names it checked.
std::size_t expect_only_exported_names(const std::string& file, const Exported& e) {
  const auto names = referenced_names(read_source_file(file));
  for (const auto& name : names) {
    EXPECT_TRUE(e.families.contains(family_of(name, e)))
        << file << " refers to " << name << ", which pgferry does not export";
  }
  return names.size();
}

TEST(TelemetryNames, ExportsEveryMetricOfTheInterface) {
  const auto e = at_start();
  for (const char* name : {
           "pgferry_build_info",
           "pgferry_changes_applied_total",
           "pgferry_transactions_applied_total",
           "pgferry_end_to_end_latency_seconds",
           "pgferry_apply_duration_seconds",
           "pgferry_batch_rows",
           "pgferry_journal_backlog_rows",
           "pgferry_journal_oldest_change_age_seconds",
           "pgferry_replication_lag_seconds",
           "pgferry_table_backlog_rows",
           "pgferry_table_lag_seconds",
           "pgferry_health_last_check_timestamp_seconds",
           "pgferry_journal_bytes",
           "pgferry_last_applied_timestamp_seconds",
           "pgferry_doorbells_total",
           "pgferry_doorbell_armed",
           "pgferry_doorbell_disarms_total",
           "pgferry_sync_errors_total",
           "pgferry_sync_errors_open",
           "pgferry_connection_up",
           "pgferry_reconnects_total",
           "pgferry_sweep_duration_seconds",
           "pgferry_sweep_last_duration_seconds",
           "pgferry_sweep_interval_seconds",
           "pgferry_sweep_rows_repaired_total",
           "pgferry_table_stopped",
           "pgferry_snapshot_rows_total",
           "pgferry_snapshot_tables_remaining",
           "pgferry_notify_queue_usage_ratio",
       }) {
    EXPECT_TRUE(e.families.contains(name)) << name << " is not exported";
  }
  for (const char* name : {"pgferry_end_to_end_latency_seconds", "pgferry_apply_duration_seconds", "pgferry_batch_rows",
                           "pgferry_sweep_duration_seconds"}) {
    EXPECT_TRUE(e.histograms.contains(name)) << name << " is not a histogram";
  }
}

// The alerts match on these label values (conn=~"source|target", table); the series exist from
// the start, at 0, so an alert or a panel sees them before the first event.
TEST(TelemetryNames, ExportsTheSeriesTheAlertsMatchOnFromTheStart) {
  const auto e = at_start();
  for (const char* series : {
           R"(pgferry_connection_up{conn="source"} 0)",
           R"(pgferry_connection_up{conn="target"} 0)",
           R"(pgferry_connection_up{conn="listener"} 0)",
           R"(pgferry_table_stopped{table="public.users"} 0)",
           R"(pgferry_sync_errors_open{table="public.users"} 0)",
           R"(pgferry_table_backlog_rows{table="public.users"} 0)",
           R"(pgferry_table_lag_seconds{table="public.users"} 0)",
           "\npgferry_replication_lag_seconds 0",
           // 0 until the first measurement: PgferryMeasurementsStale fires for a pgferry that never measures.
           "\npgferry_health_last_check_timestamp_seconds 0",
           R"(pgferry_changes_applied_total{op="insert",table="public.users"} 0)",
           R"(pgferry_changes_applied_total{op="update",table="public.users"} 0)",
           R"(pgferry_changes_applied_total{op="delete",table="public.users"} 0)",
           R"(pgferry_changes_applied_total{op="truncate",table="public.users"} 0)",
           R"(pgferry_build_info{version=")",
       }) {
    EXPECT_NE(e.text.find(series), std::string::npos) << "missing: " << series << "\nin:\n" << e.text;
  }
}

// rate() and increase() miss the first event of a series that appears at 1: the counters exist at
// 0 from the start, for every configured table x class and every conn x reason.
TEST(TelemetryNames, ExportsEveryCounterAtZeroBeforeItsFirstEvent) {
  const auto e = at_start();
  for (const char* series : {
           R"(pgferry_sync_errors_total{class="quarantine_row",table="public.users"} 0)",
           R"(pgferry_sync_errors_total{class="held_back",table="public.users"} 0)",
           R"(pgferry_sync_errors_total{class="stop_table",table="public.users"} 0)",
           R"(pgferry_sync_errors_total{class="mass_delete",table="public.users"} 0)",
           R"(pgferry_reconnects_total{conn="source",reason="lost"} 0)",
           R"(pgferry_reconnects_total{conn="target",reason="heartbeat"} 0)",
           R"(pgferry_reconnects_total{conn="listener",reason="connect_failed"} 0)",
       }) {
    EXPECT_NE(e.text.find(series), std::string::npos) << "missing at start: " << series;
  }
}

TEST(TelemetryNames, EveryExportedMetricIsDocumented) {
  const auto e = at_start();
  const auto documented = referenced_names(read_source_file("docs/METRICS.md"));
  ASSERT_FALSE(e.families.empty());
  for (const auto& name : e.families) {
    EXPECT_TRUE(documented.contains(name)) << name << " is exported but docs/METRICS.md does not mention it";
  }
}

TEST(TelemetryNames, MetricsDocumentationNamesOnlyExportedMetrics) {
  EXPECT_GT(expect_only_exported_names("docs/METRICS.md", at_start()), 0U);
}

TEST(TelemetryNames, AlertsQueryOnlyExportedMetrics) {
  EXPECT_GT(expect_only_exported_names("deploy/prometheus/alerts.yml", at_start()), 0U);
}

TEST(TelemetryNames, DashboardQueriesOnlyExportedMetrics) {
  EXPECT_GT(expect_only_exported_names("deploy/grafana/pgferry.json", at_start()), 0U);
}

TEST(TelemetryNames, DashboardIsJsonWithATitleAndAQueryInEveryPanel) {
  const simdjson::padded_string json(read_source_file("deploy/grafana/pgferry.json"));
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(json).get(root), simdjson::SUCCESS) << "deploy/grafana/pgferry.json is not valid JSON";
  simdjson::dom::array panels;
  ASSERT_EQ(root["panels"].get(panels), simdjson::SUCCESS) << "no panels array";
  ASSERT_GT(panels.size(), 0U);
  std::size_t index = 0;
  for (simdjson::dom::element panel : panels) {
    std::string_view title;
    EXPECT_EQ(panel["title"].get(title), simdjson::SUCCESS) << "panel " << index << " has no title";
    EXPECT_FALSE(title.empty()) << "panel " << index << " has an empty title";
    simdjson::dom::array targets;
    std::size_t queries = 0;
    if (panel["targets"].get(targets) == simdjson::SUCCESS) {
      for (simdjson::dom::element target : targets) {
        std::string_view expr;
        if (target["expr"].get(expr) == simdjson::SUCCESS && !expr.empty()) ++queries;
      }
    }
    EXPECT_GT(queries, 0U) << "panel " << index << " (" << title << ") has no target with an expr";
    ++index;
  }
}

}  // namespace
