#include "status.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>

#include "journal.hpp"

namespace pgferry::status {
namespace {

std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  return fmt::format("{:.3f}", v);
}

template <typename T>
std::string opt(const std::optional<T>& v) {
  if (!v) return "null";
  if constexpr (std::is_floating_point_v<T>) {
    return number(*v);
  } else {
    return std::to_string(*v);
  }
}

std::string checks_json(const Snapshot& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.checks.size(); ++i) {
    const auto& c = s.checks[i];
    out += fmt::format(R"({}{{"name":{},"ok":{},"detail":{}}})", i > 0 ? "," : "", json_quote(c.name),
                       c.ok ? "true" : "false", json_quote(c.detail));
  }
  return out + "]";
}

std::string age(double seconds) {
  if (seconds < 120) return fmt::format("{:.0f} s", seconds);
  if (seconds < 7200) return fmt::format("{:.0f} min", seconds / 60);
  return fmt::format("{:.1f} h", seconds / 3600);
}

}  // namespace

void evaluate(Snapshot& s) {
  s.checks.clear();
  auto& rec = s.recommendations;
  auto recommend = [&](std::string text) {
    if (std::find(rec.begin(), rec.end(), text) == rec.end()) rec.push_back(std::move(text));
  };
  for (const char* name : {"source", "target"}) {
    const auto it =
        std::find_if(s.connections.begin(), s.connections.end(), [&](const Connection& c) { return c.name == name; });
    Check c{name, false, ""};
    if (it == s.connections.end()) {
      c.detail = fmt::format("no {} connection known", name);
    } else if (it->up) {
      c.ok = true;
      c.detail = "connected";
    } else {
      c.detail = it->error.empty() ? "not connected" : "not connected: " + it->error;
      if (it->next_retry_seconds) c.detail += fmt::format(" (next attempt in {:.1f} s)", *it->next_retry_seconds);
      recommend(
          fmt::format("the {} database is unreachable{}: check that it runs and that pgferry's role may connect "
                      "(a running pgferry keeps retrying with backoff; nothing is lost meanwhile)",
                      name, it->down_seconds ? " for " + age(*it->down_seconds) : ""));
    }
    s.checks.push_back(std::move(c));
  }
  {
    std::vector<std::string> stopped;
    for (const auto& t : s.tables) {
      if (t.phase == "stopped") stopped.push_back(t.reason.empty() ? t.source : t.source + " (" + t.reason + ")");
    }
    Check c{"tables", stopped.empty(), ""};
    if (stopped.empty()) {
      c.detail = fmt::format("{} table(s), none stopped", s.tables.size());
    } else {
      c.detail = "stopped: ";
      for (std::size_t i = 0; i < stopped.size(); ++i) c.detail += (i > 0 ? "; " : "") + stopped[i];
      recommend(
          "a table is stopped: see `pgferry errors list --open` for why, fix the cause, then `pgferry errors retry "
          "ID`");
    }
    s.checks.push_back(std::move(c));
  }
  {
    Check c{"lag", false, ""};
    if (!s.lag_seconds) {
      const bool source_down = !s.checks.empty() && !s.checks.front().ok;
      c.detail = source_down ? "unknown: the source cannot be reached" : "not measured yet";
    } else if (*s.lag_seconds <= s.max_lag_seconds) {
      c.ok = true;
      c.detail = fmt::format("{:.1f} s (max {:.0f} s)", *s.lag_seconds, s.max_lag_seconds);
    } else {
      c.detail = fmt::format("{:.1f} s, above health.max_lag {:.0f} s", *s.lag_seconds, s.max_lag_seconds);
      recommend(
          fmt::format("replication lags {} behind the source: look at the target's load and locks, and at "
                      "pgferry_apply_duration_seconds",
                      age(*s.lag_seconds)));
    }
    s.checks.push_back(std::move(c));
  }
  if (s.open_sync_errors && *s.open_sync_errors > 0) {
    recommend(
        fmt::format("{} open sync error(s): `pgferry errors list --open` shows them; `pgferry errors retry` "
                    "applies the current source rows once the cause is fixed",
                    *s.open_sync_errors));
  }
  if (s.notify_queue_usage && *s.notify_queue_usage > 0.5) {
    recommend(
        fmt::format("the source's NOTIFY queue is {:.0f}% full: a session that LISTENs and never reads holds it "
                    "(see pg_stat_activity); when full, every NOTIFY on the source fails",
                    100 * *s.notify_queue_usage));
  }
  if (s.sweep.interval_seconds && s.sweep.last_duration_seconds &&
      *s.sweep.last_duration_seconds > *s.sweep.interval_seconds) {
    recommend(
        fmt::format("the last sweep took {:.0f} s, longer than sweep.interval ({:.0f} s): raise sweep.interval "
                    "or index the updated_at columns",
                    *s.sweep.last_duration_seconds, *s.sweep.interval_seconds));
  }
  s.ready = std::all_of(s.checks.begin(), s.checks.end(), [](const Check& c) { return c.ok; });
}

std::string to_json(const Snapshot& s) {
  std::string out = "{";
  out += fmt::format(R"("version":{},"origin":{},"ready":{},"uptime_seconds":{},)", json_quote(s.version),
                     json_quote(s.origin), s.ready ? "true" : "false", opt(s.uptime_seconds));
  out += fmt::format(
      R"("lag_seconds":{},"max_lag_seconds":{},"journal":{{"backlog_rows":{},"oldest_change_age_seconds":{},"bytes":{}}},)",
      opt(s.lag_seconds), number(s.max_lag_seconds), opt(s.backlog_rows), opt(s.oldest_change_age_seconds),
      opt(s.journal_bytes));
  out += fmt::format(R"("notify_queue_usage":{},"open_sync_errors":{},"last_applied_unix":{},)",
                     opt(s.notify_queue_usage), opt(s.open_sync_errors), opt(s.last_applied_unix));
  out += fmt::format(
      R"("sweep":{{"interval_seconds":{},"last_started_unix":{},"last_duration_seconds":{},"rows_repaired":{}}},)",
      opt(s.sweep.interval_seconds), opt(s.sweep.last_started_unix), opt(s.sweep.last_duration_seconds),
      s.sweep.rows_repaired);
  out += R"("connections":[)";
  for (std::size_t i = 0; i < s.connections.size(); ++i) {
    const auto& c = s.connections[i];
    out += fmt::format(R"({}{{"name":{},"up":{},"error":{},"down_seconds":{},"next_retry_seconds":{}}})",
                       i > 0 ? "," : "", json_quote(c.name), c.up ? "true" : "false", json_quote(c.error),
                       opt(c.down_seconds), opt(c.next_retry_seconds));
  }
  out += R"(],"tables":[)";
  for (std::size_t i = 0; i < s.tables.size(); ++i) {
    const auto& t = s.tables[i];
    out += fmt::format(
        R"({}{{"source":{},"target":{},"phase":{},"reason":{},"open_errors":{},"rows_applied":{},"last_applied_unix":{}}})",
        i > 0 ? "," : "", json_quote(t.source), json_quote(t.target), json_quote(t.phase), json_quote(t.reason),
        t.open_errors, t.rows_applied, opt(t.last_applied_unix));
  }
  out += R"(],"checks":)" + checks_json(s) + R"(,"recommendations":[)";
  for (std::size_t i = 0; i < s.recommendations.size(); ++i) {
    out += (i > 0 ? "," : "") + json_quote(s.recommendations[i]);
  }
  return out + "]}";
}

std::string readiness_json(const Snapshot& s) {
  return fmt::format(R"({{"ready":{},"checks":{}}})", s.ready ? "true" : "false", checks_json(s));
}

namespace {

using simdjson::ondemand::value;

Status bad(std::string_view what) {
  return runtime_error("/status", fmt::format("unexpected JSON: {}", what),
                       "is the program answering on http.listen a pgferry of the same version?");
}

template <typename T>
Status read_opt(value v, std::optional<T>& out) {
  bool null = false;
  if (v.is_null().get(null) != simdjson::SUCCESS) return bad("unreadable value");
  if (null) {
    out.reset();
    return Ok{};
  }
  if constexpr (std::is_floating_point_v<T>) {
    double d = 0;
    if (v.get_double().get(d) != simdjson::SUCCESS) return bad("expected a number");
    out = d;
  } else {
    std::int64_t n = 0;
    if (v.get_int64().get(n) != simdjson::SUCCESS) return bad("expected a whole number");
    out = n;
  }
  return Ok{};
}

Status read_string(value v, std::string& out) {
  std::string_view sv;
  if (v.get_string().get(sv) != simdjson::SUCCESS) return bad("expected a string");
  out = std::string(sv);
  return Ok{};
}

Status read_bool(value v, bool& out) {
  if (v.get_bool().get(out) != simdjson::SUCCESS) return bad("expected true or false");
  return Ok{};
}

Status read_int(value v, std::int64_t& out) {
  if (v.get_int64().get(out) != simdjson::SUCCESS) return bad("expected a whole number");
  return Ok{};
}

/// Calls `each(key, value)` for every field of the object `v`.
template <typename F>
Status fields(value v, F&& each) {
  simdjson::ondemand::object o;
  if (v.get_object().get(o) != simdjson::SUCCESS) return bad("expected an object");
  for (auto field : o) {
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return bad("unreadable key");
    value fv;
    if (field.value().get(fv) != simdjson::SUCCESS) return bad("unreadable value");
    if (auto s = each(key, fv); !s) return s;
  }
  return Ok{};
}

template <typename F>
Status elements(value v, F&& each) {
  simdjson::ondemand::array a;
  if (v.get_array().get(a) != simdjson::SUCCESS) return bad("expected an array");
  for (auto e : a) {
    value ev;
    if (e.get(ev) != simdjson::SUCCESS) return bad("unreadable element");
    if (auto s = each(ev); !s) return s;
  }
  return Ok{};
}

}  // namespace

Result<Snapshot> from_json(std::string_view json) {
  Snapshot s;
  simdjson::ondemand::parser parser;
  simdjson::padded_string padded(json);
  // On-Demand reads lazily and would not notice text after the object; the DOM parser checks
  // the whole document first.
  simdjson::dom::parser whole;
  if (whole.parse(padded).error() != simdjson::SUCCESS) return bad("not a JSON document").error();
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS) return bad("not JSON").error();
  value root;
  if (doc.get_value().get(root) != simdjson::SUCCESS) return bad("not JSON").error();
  auto st = fields(root, [&](std::string_view k, value v) -> Status {
    if (k == "version") return read_string(v, s.version);
    if (k == "origin") return read_string(v, s.origin);
    if (k == "ready") return read_bool(v, s.ready);
    if (k == "uptime_seconds") return read_opt(v, s.uptime_seconds);
    if (k == "lag_seconds") return read_opt(v, s.lag_seconds);
    if (k == "max_lag_seconds") {
      std::optional<double> d;
      if (auto r = read_opt(v, d); !r) return r;
      s.max_lag_seconds = d.value_or(s.max_lag_seconds);
      return Ok{};
    }
    if (k == "notify_queue_usage") return read_opt(v, s.notify_queue_usage);
    if (k == "open_sync_errors") return read_opt(v, s.open_sync_errors);
    if (k == "last_applied_unix") return read_opt(v, s.last_applied_unix);
    if (k == "journal") {
      return fields(v, [&](std::string_view jk, value jv) -> Status {
        if (jk == "backlog_rows") return read_opt(jv, s.backlog_rows);
        if (jk == "oldest_change_age_seconds") return read_opt(jv, s.oldest_change_age_seconds);
        if (jk == "bytes") return read_opt(jv, s.journal_bytes);
        return Ok{};
      });
    }
    if (k == "sweep") {
      return fields(v, [&](std::string_view sk, value sv) -> Status {
        if (sk == "interval_seconds") return read_opt(sv, s.sweep.interval_seconds);
        if (sk == "last_started_unix") return read_opt(sv, s.sweep.last_started_unix);
        if (sk == "last_duration_seconds") return read_opt(sv, s.sweep.last_duration_seconds);
        if (sk == "rows_repaired") return read_int(sv, s.sweep.rows_repaired);
        return Ok{};
      });
    }
    if (k == "connections") {
      return elements(v, [&](value e) -> Status {
        Connection c;
        auto r = fields(e, [&](std::string_view ck, value cv) -> Status {
          if (ck == "name") return read_string(cv, c.name);
          if (ck == "up") return read_bool(cv, c.up);
          if (ck == "error") return read_string(cv, c.error);
          if (ck == "down_seconds") return read_opt(cv, c.down_seconds);
          if (ck == "next_retry_seconds") return read_opt(cv, c.next_retry_seconds);
          return Ok{};
        });
        s.connections.push_back(std::move(c));
        return r;
      });
    }
    if (k == "tables") {
      return elements(v, [&](value e) -> Status {
        Table t;
        auto r = fields(e, [&](std::string_view tk, value tv) -> Status {
          if (tk == "source") return read_string(tv, t.source);
          if (tk == "target") return read_string(tv, t.target);
          if (tk == "phase") return read_string(tv, t.phase);
          if (tk == "reason") return read_string(tv, t.reason);
          if (tk == "open_errors") return read_int(tv, t.open_errors);
          if (tk == "rows_applied") return read_int(tv, t.rows_applied);
          if (tk == "last_applied_unix") return read_opt(tv, t.last_applied_unix);
          return Ok{};
        });
        s.tables.push_back(std::move(t));
        return r;
      });
    }
    if (k == "checks") {
      return elements(v, [&](value e) -> Status {
        Check c;
        auto r = fields(e, [&](std::string_view ck, value cv) -> Status {
          if (ck == "name") return read_string(cv, c.name);
          if (ck == "ok") return read_bool(cv, c.ok);
          if (ck == "detail") return read_string(cv, c.detail);
          return Ok{};
        });
        s.checks.push_back(std::move(c));
        return r;
      });
    }
    if (k == "recommendations") {
      return elements(v, [&](value e) -> Status {
        std::string text;
        if (auto r = read_string(e, text); !r) return r;
        s.recommendations.push_back(std::move(text));
        return Ok{};
      });
    }
    return Ok{};
  });
  if (!st) return std::move(st).error();
  return s;
}

void BacklogTrend::add(double at_seconds, std::int64_t rows) {
  samples_.push_back({at_seconds, rows});
  const double keep_after = at_seconds - 2 * window_;
  const auto first =
      std::find_if(samples_.begin(), samples_.end(), [&](const Sample& x) { return x.at >= keep_after; });
  samples_.erase(samples_.begin(), first);
}

double BacklogTrend::growing_for() const {
  if (samples_.size() < 2) return 0;
  const auto& last = samples_.back();
  // The backlog has grown since sample s when it is larger now, never emptied since, and never
  // came back down to s's level in the second half of the span (dips of jitter in between are
  // allowed: a backlog that grows by batches is never monotonic). The longest such span counts.
  double longest = 0;
  std::size_t first_nonzero = samples_.size();
  while (first_nonzero > 0 && samples_[first_nonzero - 1].rows > 0) --first_nonzero;
  for (std::size_t s = first_nonzero; s + 1 < samples_.size(); ++s) {
    const auto& start = samples_[s];
    if (last.rows <= start.rows) continue;
    const double half = start.at + (last.at - start.at) / 2;
    bool held = true;
    for (std::size_t i = s + 1; i < samples_.size() && held; ++i) {
      if (samples_[i].at >= half && samples_[i].rows <= start.rows) held = false;
    }
    if (held) longest = std::max(longest, last.at - start.at);
  }
  return longest;
}

}  // namespace pgferry::status
