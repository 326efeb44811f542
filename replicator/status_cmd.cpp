#include "status_cmd.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http_client.hpp"
#include "monitor.hpp"
#include "pg.hpp"
#include "setup.hpp"
#include "status.hpp"

namespace pgferry {
namespace {

// ---------------------------------------------------------------------------------------------
// Reading both databases (no running pgferry answered)

/// Text on one line: each run of whitespace holding a newline or tab becomes one space.
std::string one_line(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  bool gap = false;
  for (char c : s) {
    if (c == '\n' || c == '\r' || c == '\t') {
      gap = true;
      continue;
    }
    if (gap && (out.empty() || out.back() != ' ')) out += ' ';
    gap = false;
    out += c;
  }
  return out;
}

/// An error as one line, where and what (the fix is the recommendation's job).
std::string error_text(const Error& e) { return one_line(e.where.empty() ? e.message : e.where + ": " + e.message); }

/// A failed read of pgferry's own tables, as a recommendation that says what to do about it.
std::string read_failure(std::string_view what, const Session& db, const Error& e) {
  const auto& state = db.last_sqlstate();
  // Undefined table, schema or column: setup has not run with this pgferry version.
  const bool not_set_up = state == "42P01" || state == "3F000" || state == "42703";
  return fmt::format("cannot read {}: {}{}", what, error_text(e),
                     not_set_up ? "; run `pgferry setup` with this configuration first" : "");
}

std::int64_t int_at(const PGresult* r, int row, int col) { return std::strtoll(PQgetvalue(r, row, col), nullptr, 10); }

std::optional<double> double_at(const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col) != 0) return std::nullopt;
  return std::strtod(PQgetvalue(r, row, col), nullptr);
}

/// The later of two optional times.
void keep_latest(std::optional<double>& latest, const std::optional<double>& t) {
  if (t && (!latest || *t > *latest)) latest = t;
}

/// Connects to one database for `status`, recording the connection (up, or down with why).
std::optional<Session> connect_side(const std::string& conninfo, const char* name, status::Snapshot& s) {
  status::Connection conn;
  conn.name = name;
  auto db = Session::connect(conninfo, name, "pgferry status");
  conn.up = db.ok();
  if (!db) conn.error = error_text(db.error());
  s.connections.push_back(std::move(conn));
  if (!db) return std::nullopt;
  return std::move(*db);
}

/// The journal on the source: backlog, the age of its oldest change on the source's clock, its
/// size on disk, and how full the NOTIFY queue is. `age_by_table`: the oldest change's age per
/// captured table (quoted name), from which the lag of the streaming tables is taken.
void read_source(const Config& config, status::Snapshot& s, std::map<std::string, double>& age_by_table) {
  auto db = connect_side(config.source, "source", s);
  if (!db) return;
  auto j = measure_journal(*db);
  if (!j) {
    s.recommendations.push_back(read_failure("the source journal", *db, j.error()));
    return;
  }
  s.backlog_rows = j->rows;
  s.oldest_change_age_seconds = j->oldest_age;
  s.journal_bytes = j->bytes;
  s.notify_queue_usage = j->notify_queue_usage;
  for (const auto& [quoted, t] : j->by_table) age_by_table[quoted] = t.oldest_age;
}

/// The configured tables as pgferry.table_state on the target records them, and the open sync
/// errors per table. The tables are listed (phase unknown) even when the target cannot be read.
void read_target(const Config& config, status::Snapshot& s) {
  for (const auto& t : config.tables) {
    status::Table table;
    table.source = t.source.display();
    table.target = t.target.display();
    s.tables.push_back(std::move(table));
  }
  auto db = connect_side(config.target, "target", s);
  if (!db) return;

  auto states = db->exec(
      "SELECT source_table, status, coalesce(stop_reason, ''), rows_applied, "
      "extract(epoch FROM last_applied_at)::float8, extract(epoch FROM last_sweep_started)::float8 "
      "FROM pgferry.table_state");
  if (!states) {
    s.recommendations.push_back(read_failure("pgferry.table_state on the target", *db, states.error()));
  } else {
    const PGresult* res = states->get();
    std::map<std::string, int, std::less<>> row_of;
    for (int i = 0; i < PQntuples(res); ++i) row_of.emplace(value(res, i, 0), i);
    std::string unregistered;
    for (std::size_t i = 0; i < config.tables.size(); ++i) {
      auto& table = s.tables[i];
      const auto it = row_of.find(config.tables[i].source.quoted());
      if (it == row_of.end()) {
        unregistered += (unregistered.empty() ? "" : ", ") + table.source;
        continue;
      }
      const int row = it->second;
      table.phase = value(res, row, 1);
      if (table.phase == "stopped") table.reason = one_line(value(res, row, 2));
      table.rows_applied = int_at(res, row, 3);
      table.last_applied_unix = double_at(res, row, 4);
      keep_latest(s.last_applied_unix, table.last_applied_unix);
      keep_latest(s.sweep.last_started_unix, double_at(res, row, 5));
    }
    if (!unregistered.empty()) {
      s.recommendations.push_back(
          fmt::format("{} not registered in pgferry.table_state on the target: run `pgferry setup` with this "
                      "configuration",
                      unregistered));
    }
  }

  auto errors = db->exec("SELECT source_table, count(*) FROM pgferry.sync_errors WHERE NOT resolved GROUP BY 1");
  if (!errors) {
    s.recommendations.push_back(read_failure("pgferry.sync_errors on the target", *db, errors.error()));
    return;
  }
  const PGresult* res = errors->get();
  std::int64_t total = 0;
  for (int i = 0; i < PQntuples(res); ++i) {
    const auto count = int_at(res, i, 1);
    total += count;
    const auto source_table = value(res, i, 0);
    for (std::size_t t = 0; t < config.tables.size(); ++t) {
      if (config.tables[t].source.quoted() == source_table) s.tables[t].open_errors = count;
    }
  }
  s.open_sync_errors = total;
}

/// What both databases say, evaluated, plus the failing "instance" check: without a running
/// pgferry nothing replicates, so this is never ready.
status::Snapshot read_databases(const Config& config, const std::string& why) {
  status::Snapshot s;
  s.version = PGFERRY_VERSION;
  s.origin = "databases";
  s.max_lag_seconds = std::chrono::duration<double>(config.health.max_lag).count();
  s.sweep.interval_seconds = std::chrono::duration<double>(config.sweep.interval).count();
  std::map<std::string, double> ages;
  read_source(config, s, ages);
  read_target(config, s);
  // The lag, as `run` reports it: the oldest change of a streaming table (a stopped table's or a
  // copying table's changes wait on purpose). Known only when both databases were read.
  if (s.backlog_rows && !s.tables.empty() && !s.tables.front().phase.empty()) {
    double lag = 0;
    for (std::size_t i = 0; i < config.tables.size(); ++i) {
      const auto it = ages.find(config.tables[i].source.quoted());
      if (it != ages.end() && s.tables[i].phase == "streaming") lag = std::max(lag, it->second);
    }
    s.lag_seconds = lag;
  }
  status::evaluate(s);
  s.checks.push_back(status::Check{"instance", false, why});
  s.ready = false;
  s.recommendations.emplace_back(
      "start `pgferry run` with this configuration; if it runs, set http.listen to the address it serves /status on");
  return s;
}

/// status::from_json, and an exception from the JSON parser (simdjson throws on some malformed
/// literals) as the error it is: a health check must answer, not abort.
Result<status::Snapshot> parse_status(const std::string& body) {
  try {
    return status::from_json(body);
  } catch (const std::exception& e) {
    return runtime_error("/status", fmt::format("unexpected JSON: {}", e.what()));
  }
}

// ---------------------------------------------------------------------------------------------
// Text output

/// 0.4 s, 42 s, 12 min, 3.2 h, 4.0 d.
std::string seconds_text(double seconds) {
  if (seconds < 10) return fmt::format("{:.1f} s", seconds);
  if (seconds < 120) return fmt::format("{:.0f} s", seconds);
  if (seconds < 7200) return fmt::format("{:.0f} min", seconds / 60);
  if (seconds < 2 * 86400) return fmt::format("{:.1f} h", seconds / 3600);
  return fmt::format("{:.1f} d", seconds / 86400);
}

/// Uptime as 42s, 12m5s, 3h12m, 2d3h.
std::string uptime_text(double seconds) {
  const auto total = static_cast<std::int64_t>(std::max(0.0, seconds));
  if (total < 60) return fmt::format("{}s", total);
  if (total < 3600) return fmt::format("{}m{}s", total / 60, total % 60);
  if (total < 86400) return fmt::format("{}h{}m", total / 3600, total % 3600 / 60);
  return fmt::format("{}d{}h", total / 86400, total % 86400 / 3600);
}

/// How long ago a unix time was, on this machine's clock: "2 s ago".
std::string ago_text(double unix_seconds) {
  const double now = static_cast<double>(std::time(nullptr));
  const double ago = std::max(0.0, now - unix_seconds);
  if (ago < 120) return fmt::format("{:.0f} s ago", ago);
  return seconds_text(ago) + " ago";
}

/// 512 B, 16.0 kB, 16.0 MB, 1.2 GB (powers of 1024, as pg_size_pretty).
std::string bytes_text(std::int64_t bytes) {
  const auto b = static_cast<double>(bytes);
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (std::int64_t{1} << 20)) return fmt::format("{:.1f} kB", b / 1024);
  if (bytes < (std::int64_t{1} << 30)) return fmt::format("{:.1f} MB", b / (1024 * 1024));
  return fmt::format("{:.1f} GB", b / (1024.0 * 1024 * 1024));
}

template <typename T, typename F>
std::string or_dash(const std::optional<T>& v, F&& format) {
  return v ? format(*v) : std::string("-");
}

/// The display width of `s` in code points (close enough for names and messages).
std::size_t width_of(const std::string& s) {
  std::size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80 ? 1 : 0;
  return chars;
}

/// "source up", "listener down (its error; for 2 min; next attempt in 1.5 s)". The error is left
/// out when a failing check below says it already.
std::string connection_text(const status::Connection& c, const std::vector<status::Check>& checks) {
  if (c.up) return c.name + " up";
  const bool told =
      std::any_of(checks.begin(), checks.end(), [&](const status::Check& k) { return k.name == c.name && !k.ok; });
  std::string details = c.error.empty() || told ? "" : one_line(c.error);
  const auto add = [&](const std::string& part) { details += (details.empty() ? "" : "; ") + part; };
  if (c.down_seconds) add("for " + seconds_text(*c.down_seconds));
  if (c.next_retry_seconds) add(fmt::format("next attempt in {:.1f} s", *c.next_retry_seconds));
  return details.empty() ? c.name + " down" : fmt::format("{} down ({})", c.name, details);
}

void print_text(const status::Snapshot& s) {
  const std::string verdict = s.ready ? "READY" : "NOT READY";
  if (s.origin == "instance") {
    fmt::print("pgferry {}: {} (running instance{})\n", s.version, verdict,
               s.uptime_seconds ? ", up " + uptime_text(*s.uptime_seconds) : "");
  } else {
    const auto instance =
        std::find_if(s.checks.begin(), s.checks.end(), [](const status::Check& c) { return c.name == "instance"; });
    fmt::print("pgferry {}: {} (read from the databases{})\n", s.version, verdict,
               instance != s.checks.end() ? ": " + instance->detail : "");
  }

  std::string backlog = or_dash(s.backlog_rows, [](std::int64_t n) { return fmt::format("{} rows", n); });
  if (s.backlog_rows && *s.backlog_rows > 0) {
    backlog += ", oldest " + or_dash(s.oldest_change_age_seconds, seconds_text);
  }
  fmt::print("lag {} (max {:g} s) · backlog {} · journal {} · notify queue {} · open sync errors {}\n",
             or_dash(s.lag_seconds, seconds_text), s.max_lag_seconds, backlog, or_dash(s.journal_bytes, bytes_text),
             or_dash(s.notify_queue_usage, [](double u) { return fmt::format("{:.0f}%", 100 * u); }),
             or_dash(s.open_sync_errors, [](std::int64_t n) { return std::to_string(n); }));

  std::string connections;
  for (const auto& c : s.connections) connections += (connections.empty() ? "" : " · ") + connection_text(c, s.checks);
  fmt::print("connections: {}\n", connections.empty() ? "-" : connections);

  if (s.sweep.last_started_unix) {
    std::string sweep = s.sweep.interval_seconds ? "every " + seconds_text(*s.sweep.interval_seconds) + ", " : "";
    sweep += "last started " + ago_text(*s.sweep.last_started_unix);
    if (s.sweep.last_duration_seconds) sweep += ", took " + seconds_text(*s.sweep.last_duration_seconds);
    // Only a running instance knows what its last sweep repaired.
    if (s.origin == "instance") sweep += fmt::format(", repaired {} row(s)", s.sweep.rows_repaired);
    fmt::print("sweep: {}\n", sweep);
  }

  if (!s.tables.empty()) {
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"TABLE", "TARGET", "PHASE", "APPLIED", "OPEN ERRORS", "LAST APPLIED"});
    for (const auto& t : s.tables) {
      rows.push_back({t.source, t.target.empty() ? "-" : t.target, t.phase.empty() ? "-" : t.phase,
                      t.phase.empty() ? "-" : std::to_string(t.rows_applied),
                      t.phase.empty() ? "-" : std::to_string(t.open_errors), or_dash(t.last_applied_unix, ago_text)});
    }
    std::vector<std::size_t> widths(rows.front().size(), 0);
    for (const auto& row : rows) {
      for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], width_of(row[i]));
    }
    for (const auto& row : rows) {
      std::string line;
      for (std::size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(widths[i] - width_of(row[i]) + 2, ' ');
      }
      fmt::print("{}\n", line);
    }
  }

  if (!s.ready) {
    for (const auto& c : s.checks) {
      if (!c.ok) fmt::print("not ready: {}: {}\n", c.name, one_line(c.detail));
    }
  }
  if (!s.recommendations.empty()) {
    fmt::print("recommendations:\n");
    for (const auto& r : s.recommendations) fmt::print("  - {}\n", one_line(r));
  }
}

}  // namespace

int run_status(const Config& config, const StatusOptions& options) {
  const auto address = http_connect_address(config.http.listen);
  if (!address) {
    print_error(address.error());
    return exit_code_for(address.error());
  }
  const std::string url = fmt::format("http://{}/status", address->display());

  // The running instance knows best: it has evaluated its own state (connections with their
  // retry times, the sweep, a growing backlog); nothing is re-evaluated here.
  std::optional<status::Snapshot> snapshot;
  std::string why;
  auto response = http_get(config.http.listen, "/status", options.timeout);
  if (!response) {
    why = fmt::format("no pgferry run answers on {}: {}", url, response.error().message);
  } else if (response->status != 200 && response->status != 503) {
    why = fmt::format("{} answered HTTP {}, not pgferry's status (is another program listening on http.listen?)", url,
                      response->status);
  } else if (auto parsed = parse_status(response->body); !parsed) {
    why = fmt::format("{} answered, but not with pgferry's status: {}", url, parsed.error().message);
  } else {
    snapshot = std::move(*parsed);
    snapshot->origin = "instance";
  }
  if (!snapshot) snapshot = read_databases(config, why);

  if (options.json) {
    fmt::print("{}\n", status::to_json(*snapshot));
  } else {
    print_text(*snapshot);
  }
  return snapshot->ready ? 0 : 1;
}

}  // namespace pgferry
