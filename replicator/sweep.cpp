#include "sweep.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "apply_sql.hpp"
#include "capture_sql.hpp"
#include "journal.hpp"
#include "pg.hpp"
#include "sql.hpp"

namespace pgferry {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Rows per chunk: one target transaction holds the table's lock for this many rows at most.
constexpr std::int64_t kChunkRows = 1000;
/// Repaired keys named in the per-table log line; the count is always exact.
constexpr std::size_t kKeysLogged = 20;

/// A positive integer from a test-only environment variable, if set.
std::optional<std::int64_t> positive_env(const char* name) {
  if (const char* v = std::getenv(name); v != nullptr) {
    char* end = nullptr;
    const long long n = std::strtoll(v, &end, 10);
    if (end != v && *end == '\0' && n > 0) return n;
  }
  return std::nullopt;
}

/// The chunk size; PGFERRY_TEST_SWEEP_CHUNK_ROWS overrides it so tests can make a sweep take many
/// chunks (and so many lock/read/write rounds) over a few rows.
std::int64_t chunk_rows() { return positive_env("PGFERRY_TEST_SWEEP_CHUNK_ROWS").value_or(kChunkRows); }

/// A pause between reading a chunk and writing it; PGFERRY_TEST_SWEEP_WRITE_DELAY_MS sets it so
/// tests widen the window in which a wrong lock order would let the sweep write a stale read.
milliseconds write_delay() { return milliseconds(positive_env("PGFERRY_TEST_SWEEP_WRITE_DELAY_MS").value_or(0)); }

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

/// The upsert the applier uses, plus RETURNING of the target key, so the sweep learns which rows
/// it wrote: the upsert skips rows that did not differ, and RETURNING lists only written rows.
std::string upsert_returning_key(const apply::TargetShape& shape, apply::Compare compare) {
  return apply::render_upsert(shape, compare) + " RETURNING " + sql::quote_ident_list(shape.key);
}

std::string json_array(const std::vector<std::string>& objects) {
  std::string out = "[";
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (i > 0) out += ',';
    out += objects[i];
  }
  return out + "]";
}

/// One key for a log line: 42, or (42, eu) for a composite key.
std::string key_text(const PGresult* r, int row) {
  const int n = PQnfields(r);
  if (n == 1) return value(r, row, 0);
  std::string out = "(";
  for (int c = 0; c < n; ++c) {
    if (c > 0) out += ", ";
    out += PQgetisnull(r, row, c) != 0 ? "NULL" : value(r, row, c);
  }
  return out + ")";
}

/// The source statement that reads one chunk: the row image exactly as the capture trigger
/// journals it, then updated_at and the key columns as text (the keyset cursor), for rows of the
/// window in the table's row filter, in (updated_at, key) order.
///   $1 the window's start, $2 its end (the sweep's start), $3 the row count,
///   $4.. the cursor (updated_at, key...) after the first chunk.
std::string render_chunk_read(const StreamTable& t, bool after_cursor) {
  const std::string ua = "t." + sql::quote_ident(*t.config->updated_at);
  std::string cols = ua;
  std::string cursor = "$4::timestamptz";
  for (std::size_t i = 0; i < t.source_key.size(); ++i) {
    cols += ", t." + sql::quote_ident(t.source_key[i]);
    cursor += fmt::format(", ${}", i + 5);
  }
  std::string texts = ua + "::text";
  for (const auto& k : t.source_key) texts += ", t." + sql::quote_ident(k) + "::text";
  std::string out =
      fmt::format("SELECT {}::text, {} FROM {} AS t WHERE {} >= $1::timestamptz AND {} <= $2::timestamptz",
                  capture::image_expression(t.capture, "t"), texts, t.config->source.quoted(), ua, ua);
  // The cursor's key values are untyped parameters: compared with the columns in the row
  // comparison, each takes its column's type.
  if (after_cursor) out += fmt::format(" AND ({}) > ({})", cols, cursor);
  out += fmt::format(" AND {} ORDER BY {} LIMIT $3", capture::filter_expression(t.capture, "t"), cols);
  return out;
}

}  // namespace

struct Sweeper::Impl {
  Impl(const Config& c, std::vector<StreamTable> t, Control& ctl)
      : config(c), tables(std::move(t)), control(ctl), chunk(chunk_rows()), delay(write_delay()) {}

  const Config& config;
  std::vector<StreamTable> tables;
  Control& control;
  const std::int64_t chunk;
  const milliseconds delay;

  std::thread thread;
  std::mutex mu;  // guards stop_requested, done and the cancel handles
  std::condition_variable cv;
  bool stop_requested = false;
  bool done = false;
  PGcancel* source_cancel = nullptr;
  PGcancel* target_cancel = nullptr;

  // Only the sweep thread touches these.
  std::optional<Session> source;
  std::optional<Session> target;
  std::map<std::int32_t, std::string> prepared;  // table id -> prepared upsert name, per target connection
  std::uint64_t sweeps = 0;

  [[nodiscard]] bool should_stop() {
    if (control.stopping()) return true;
    std::lock_guard lock(mu);
    return stop_requested;
  }

  // --- the thread -----------------------------------------------------------------------------

  void run() {
    const milliseconds interval = config.sweep.interval;
    auto due = Clock::now() + interval;
    for (;;) {
      {
        // Wait for the next due time; wake every 250 ms to notice a stop of the worker (Control
        // has no way to notify this condition variable).
        std::unique_lock lock(mu);
        while (!stop_requested && !control.stopping() && Clock::now() < due) {
          cv.wait_until(lock, std::min(due, Clock::now() + milliseconds(250)));
        }
        if (stop_requested || control.stopping()) break;
      }
      // Start to start: the next sweep is due one interval after this one started. When this one
      // takes longer, the next runs as soon as it ends — never two at once, never more than one
      // waiting.
      const auto started = Clock::now();
      due = started + interval;
      sweep_once(started);
    }
    disconnect();
    std::lock_guard lock(mu);
    done = true;
    cv.notify_all();
  }

  void sweep_once(Clock::time_point started) {
    const std::uint64_t n = ++sweeps;
    spdlog::info("sweep {} started", n);
    // Drain first: the worker reads the journal now even if a doorbell was lost.
    control.wake();
    std::size_t swept = 0;
    std::size_t failed = 0;
    std::int64_t repaired = 0;
    if (auto s = sweep_tables(swept, failed, repaired); !s) {
      ++failed;
      spdlog::warn("sweep {}: {}; reconnecting at the next sweep", n, s.error().describe());
      disconnect();
    }
    const double took = seconds(Clock::now() - started);
    const double every = std::chrono::duration<double>(config.sweep.interval).count();
    control.telemetry.sweep_done(
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() - took, took,
        repaired);
    spdlog::info("sweep {} finished in {:.1f} s: {} table(s) swept, {} failed, {} row(s) repaired", n, took, swept,
                 failed, repaired);
    if (took > 0.8 * every) {
      spdlog::warn(
          "sweep {} took {:.1f} s, more than 80% of sweep.interval {}; the next sweep starts right after it "
          "(raise sweep.interval, or look for what holds the tables' locks)",
          n, took, format_duration(config.sweep.interval));
    }
  }

  // --- connections ----------------------------------------------------------------------------

  void set_cancels(PGcancel* s, PGcancel* t) {
    std::lock_guard lock(mu);
    if (source_cancel != nullptr) PQfreeCancel(source_cancel);
    if (target_cancel != nullptr) PQfreeCancel(target_cancel);
    source_cancel = s;
    target_cancel = t;
  }

  void cancel_running() {
    std::lock_guard lock(mu);
    char err[256];
    if (source_cancel != nullptr) (void)PQcancel(source_cancel, err, sizeof err);
    if (target_cancel != nullptr) (void)PQcancel(target_cancel, err, sizeof err);
  }

  void disconnect() {
    set_cancels(nullptr, nullptr);
    source.reset();
    target.reset();
    prepared.clear();
  }

  Status connect() {
    if (source && target && source->alive() && target->alive()) return Ok{};
    disconnect();
    auto s = Session::connect(config.source, "source", "pgferry sweep");
    if (!s) return std::move(s).error();
    auto t = Session::connect(config.target, "target", "pgferry sweep");
    if (!t) return std::move(t).error();
    source.emplace(std::move(*s));
    target.emplace(std::move(*t));
    set_cancels(PQgetCancel(source->raw()), PQgetCancel(target->raw()));
    // Timestamps travel between the two servers as text: ISO is read back the same everywhere.
    if (auto r = source->run("SET DateStyle = 'ISO'; SET jit = off"); !r) return r;
    if (auto r = target->run("SET application_name = 'pgferry sweep'; SET DateStyle = 'ISO'"); !r) return r;
    if (config.apply.replica_role) {
      // Written like the applier writes (foreign keys and user triggers not fired).
      if (auto r = target->run("SET session_replication_role = replica"); !r) return r;
    }
    return Ok{};
  }

  /// The upsert for `t` on this target connection, prepared on first use (outside any
  /// transaction: a failed PREPARE inside one would abort it).
  Result<std::string> upsert_for(const StreamTable& t) {
    if (auto it = prepared.find(t.table_id); it != prepared.end()) return it->second;
    const std::string name = fmt::format("pgferry_sweep_upsert_{}", t.table_id);
    if (auto r = prepare_upsert(*target, name, [&](apply::Compare c) { return upsert_returning_key(t.shape, c); });
        !r) {
      return std::move(r).error();
    }
    prepared[t.table_id] = name;
    return name;
  }

  // --- one sweep ------------------------------------------------------------------------------

  /// Sweeps every table with updated_at that streams. A table that fails is logged and skipped
  /// (its last_sweep_started stays); a lost connection ends the sweep with an error.
  Status sweep_tables(std::size_t& swept, std::size_t& failed, std::int64_t& repaired) {
    bool any = false;
    for (const auto& t : tables) any = any || t.config->updated_at.has_value();
    if (!any) return Ok{};
    if (auto s = connect(); !s) return s;
    // The source's clock: the window is compared with the source's updated_at values.
    auto now = source->scalar("SELECT now()::text");
    if (!now) return std::move(now).error();
    const std::string sweep_start = *now;
    auto states = target->exec("SELECT source_table, status, last_sweep_started::text FROM pgferry.table_state");
    if (!states) return std::move(states).error();
    std::map<std::string, std::pair<std::string, std::optional<std::string>>> state;
    for (int r = 0; r < PQntuples(states->get()); ++r) {
      std::optional<std::string> last;
      if (PQgetisnull(states->get(), r, 2) == 0) last = value(states->get(), r, 2);
      state[value(states->get(), r, 0)] = {value(states->get(), r, 1), last};
    }
    const auto lookback = static_cast<std::int64_t>(config.sweep.lookback_multiplier *
                                                    static_cast<double>(config.sweep.interval.count()));
    for (const auto& t : tables) {
      if (should_stop()) return Ok{};
      if (!t.config->updated_at) continue;
      const auto it = state.find(t.source_name);
      if (it == state.end() || it->second.first != "streaming") {
        spdlog::debug("sweep: {}: skipped (status {})", t.label, it == state.end() ? "unknown" : it->second.first);
        continue;
      }
      auto since = source->scalar("SELECT (coalesce($1::timestamptz, $2::timestamptz) - $3::interval)::text",
                                  {it->second.second, sweep_start, fmt::format("{} milliseconds", lookback)});
      if (!since) return std::move(since).error();
      auto n = sweep_table(t, *since, sweep_start);
      if (!n) {
        if (should_stop()) return Ok{};  // the stop cancelled a statement of this table
        ++failed;
        spdlog::warn("sweep: {}: {}", t.label, n.error().describe());
        if (!source->alive() || !target->alive()) return runtime_error("sweep", "a connection was lost");
        (void)target->run("ROLLBACK");
        continue;
      }
      if (should_stop()) return Ok{};  // interrupted: the table was not swept to the end
      auto u =
          target->query("UPDATE pgferry.table_state SET last_sweep_started = $2::timestamptz WHERE source_table = $1",
                        {t.source_name, sweep_start});
      if (!u) return std::move(u).error();
      ++swept;
      repaired += *n;
      if (*n > 0)
        control.telemetry.table(t.config->source.display()).sweep_repaired->Increment(static_cast<double>(*n));
    }
    return Ok{};
  }

  /// Repairs the rows of `t` whose updated_at lies in [since, until], chunk by chunk; returns how
  /// many rows it wrote (0 when the sweep was stopped half-way too, which the caller checks).
  Result<std::int64_t> sweep_table(const StreamTable& t, const std::string& since, const std::string& until) {
    auto upsert = upsert_for(t);
    if (!upsert) return std::move(upsert).error();
    const std::string first_sql = render_chunk_read(t, false);
    const std::string next_sql = render_chunk_read(t, true);
    const std::string lock_sql = apply::render_table_locks({t.table_id}, false);
    std::vector<Param> cursor;  // updated_at, key... of the last row read
    std::int64_t written = 0;
    std::vector<std::string> keys;
    for (;;) {
      if (should_stop()) return std::int64_t{0};
      // The table's lock first, exclusive: every batch of the worker holds it shared until it
      // commits. Only once it is granted is the chunk read from the source, so the read is at
      // least as new as every change any batch has written, and no batch writes in between.
      if (auto r = target->run("BEGIN"); !r) return std::move(r).error();
      if (auto r = target->exec(lock_sql); !r) return std::move(r).error();
      std::vector<Param> params = {since, until, std::to_string(chunk)};
      params.insert(params.end(), cursor.begin(), cursor.end());
      auto rows = source->query(cursor.empty() ? first_sql : next_sql, params);
      if (delay.count() > 0) std::this_thread::sleep_for(delay);
      if (!rows) return std::move(rows).error();
      const PGresult* res = rows->get();
      const int count = PQntuples(res);
      std::vector<std::string> images;
      images.reserve(static_cast<std::size_t>(count));
      for (int r = 0; r < count; ++r) {
        auto m = map_image(value(res, r, 0), t.mapping);
        if (!m) return std::move(m).error();
        images.push_back(std::move(*m));
      }
      if (count > 0) {
        auto w = target->exec_prepared(*upsert, {json_array(images)});
        if (!w) return std::move(w).error();
        for (int r = 0; r < PQntuples(w->get()); ++r) {
          if (keys.size() < kKeysLogged) keys.push_back(key_text(w->get(), r));
          ++written;
        }
      }
      if (auto r = target->run("COMMIT"); !r) return std::move(r).error();
      if (count < chunk) break;
      cursor.clear();
      for (int c = 1; c < PQnfields(res); ++c) cursor.emplace_back(value(res, count - 1, c));
    }
    if (written > 0) {
      spdlog::info("sweep: {}: {} row(s) repaired: keys {}{}", t.label, written, fmt::join(keys, ", "),
                   written > static_cast<std::int64_t>(keys.size()) ? ", ..." : "");
    } else {
      spdlog::debug("sweep: {}: 0 rows repaired", t.label);
    }
    return written;
  }
};

Sweeper::Sweeper(const Config& config, std::vector<StreamTable> tables, Control& control)
    : impl_(std::make_unique<Impl>(config, std::move(tables), control)) {}

Sweeper::~Sweeper() { stop(); }

void Sweeper::start() {
  if (impl_->thread.joinable()) return;
  const bool any = std::any_of(impl_->tables.begin(), impl_->tables.end(),
                               [](const StreamTable& t) { return t.config->updated_at.has_value(); });
  impl_->control.telemetry.sweep_interval.Set(any ? std::chrono::duration<double>(impl_->config.sweep.interval).count()
                                                  : 0.0);
  impl_->thread = std::thread([this] {
    try {
      impl_->run();
    } catch (const std::exception& e) {
      // Nothing here is meant to throw; if something does, the sweep ends, the replicator goes on.
      spdlog::error("sweep: stopped by an unexpected error: {}", e.what());
      std::lock_guard lock(impl_->mu);
      impl_->done = true;
      impl_->cv.notify_all();
    }
  });
}

void Sweeper::stop() {
  if (!impl_->thread.joinable()) return;
  {
    std::unique_lock lock(impl_->mu);
    impl_->stop_requested = true;
    impl_->cv.notify_all();
  }
  // A statement in flight (a chunk waiting for the table's lock, a long read) is cancelled; keep
  // cancelling until the thread is out, in case the cancel lands between two statements.
  for (;;) {
    {
      std::unique_lock lock(impl_->mu);
      if (impl_->cv.wait_for(lock, milliseconds(100), [&] { return impl_->done; })) break;
    }
    impl_->cancel_running();
  }
  impl_->thread.join();
  impl_->set_cancels(nullptr, nullptr);
}

}  // namespace pgferry
