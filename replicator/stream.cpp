#include "stream.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <utility>

#include "acks.hpp"
#include "backoff.hpp"
#include "capture_sql.hpp"
#include "coalesce.hpp"
#include "journal.hpp"
#include "pg.hpp"
#include "pg_error.hpp"
#include "reconnect.hpp"

namespace pgferry {

// ---------------------------------------------------------------------------------------------
// Control

Control::~Control() {
  for (auto*& c : cancels_) {
    if (c != nullptr) PQfreeCancel(c);
    c = nullptr;
  }
}

void Control::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Control::request_stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
}

bool Control::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return woken_ || stop_.load(); });
}

void Control::clear_wake() {
  std::lock_guard lock(mu_);
  woken_ = false;
}

void Control::set_cancel(int slot, pg_cancel* cancel) {
  std::lock_guard lock(mu_);
  if (cancels_[slot] != nullptr) PQfreeCancel(cancels_[slot]);
  cancels_[slot] = cancel;
}

void Control::cancel_all() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  for (auto* c : cancels_) {
    if (c == nullptr) continue;
    char err[256];
    (void)PQcancel(c, err, sizeof err);
  }
}

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kSourceSlot = 0;
constexpr int kTargetSlot = 1;
constexpr int kCopySourceSlot = 2;
constexpr int kCopyTargetSlot = 3;
constexpr int kAcksSlot = 4;  // the flush or ack a settle waits for

std::string json_array(const std::vector<std::string>& objects) {
  std::size_t size = 2;
  for (const auto& o : objects) size += o.size() + 1;
  std::string out;
  out.reserve(size);
  out += '[';
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (i > 0) out += ',';
    out += objects[i];
  }
  out += ']';
  return out;
}

/// The next batch: whole source transactions in an order consistent with every row's commit
/// order. A transaction T is taken only with every transaction it depends on:
///   * `head` is a prefix (by id) of the visible journal rows, cut at max_rows and max_bytes;
///   * a transaction is taken when all its visible rows are in the head (none after the cut).
/// If T touched a row after U committed (U held the row lock until then), every id of U is
/// smaller than T's id for that row, so U lies entirely before the cut whenever T does: U is in
/// the batch too. A transaction that commits late (lower ids, later commit) is simply read later;
/// nothing is skipped, because acknowledged rows are deleted instead of remembered by a cursor.
constexpr const char* kReadBatch = R"(
WITH head AS (
  SELECT j.*, sum(coalesce(pg_column_size(j.new_row), 0) + coalesce(pg_column_size(j.old_key), 0) + 64)
              OVER (ORDER BY j.id) AS bytes
  FROM (SELECT * FROM pgferry.journal WHERE table_id <> ALL ($1::int[]) AND NOT ($4::int8multirange @> id)
        ORDER BY id LIMIT $2) j
), cut AS (
  SELECT * FROM head WHERE bytes <= $3 OR id = (SELECT min(id) FROM head)
), batch AS (
  -- Per row, not by joining a set of whole transactions back to the cut: a row is taken when
  -- its transaction has no visible row after the cut. The cut's last id is an uncorrelated
  -- scalar subquery, computed once. (Joining CTEs, the planner, misled by journal statistics
  -- taken while it was nearly empty, chose a nested loop over two 10,000-row CTEs: 13 s per
  -- batch on a 468k-row backlog instead of 58 ms.)
  -- "Same xid, id after the cut" is written as a range of the (xid, id) index, in row
  -- comparisons: only that index can serve them, and only probed per row with c.xid. Written as
  -- `j.xid = c.xid AND j.id > max`, a planner that believed the journal empty (statistics from a
  -- vacuum of the empty journal) scanned `id > max` over the whole rest of the journal once per
  -- row of the cut, with xid as a join filter: 98 s for one batch.
  SELECT c.id, c.xid, c.table_id, c.op, c.old_key, c.new_row, extract(epoch FROM c.captured_at)::float8 FROM cut c
  WHERE NOT EXISTS (SELECT 1 FROM pgferry.journal j
                    WHERE (j.xid, j.id) > (c.xid, (SELECT max(id) FROM cut))
                      AND (j.xid, j.id) <= (c.xid, 9223372036854775807)
                      AND j.table_id <> ALL ($1::int[]))
)
SELECT * FROM batch
UNION ALL
-- No whole transaction fits although the journal has rows: one row of NULLs says so, decided in
-- this statement's snapshot (a second statement could see a commit that landed in between).
SELECT NULL::bigint, NULL::xid8, NULL::integer, NULL::"char", NULL::jsonb, NULL::jsonb, NULL::float8
WHERE EXISTS (SELECT 1 FROM head) AND NOT EXISTS (SELECT 1 FROM batch)
ORDER BY 1)";

/// The batch read while the journal is nearly empty (the replicator keeps up): every visible row,
/// if there are fewer than $2 and they fit in $4 bytes. Then every transaction in it is whole
/// (none has a visible row after them), so it is the batch kReadBatch would return, at half the
/// cost (~0.5 ms less, most of it planning kReadBatch's CTEs): what a change waits for when it
/// rang the doorbell, and what the stream reads at its pace while writers are busy. Rows past $4
/// bytes are not sent; the first one that crosses it is, and tells the caller so (its running
/// total, the last column, is over $4). Prepared once (Statement::kReused): its one plan, the
/// id index under a LIMIT, is right for any values. (The third parameter of both: the ids of the
/// batches applied and not yet acknowledged, read past as if already deleted; see read_ahead.)
constexpr const char* kReadAll = R"(
SELECT id, xid, table_id, op, old_key, new_row, captured_at, bytes FROM (
  SELECT id, xid, table_id, op, old_key, new_row, extract(epoch FROM captured_at)::float8 AS captured_at,
         sum(size) OVER (ORDER BY id) AS bytes, size
  FROM (SELECT *, coalesce(pg_column_size(new_row), 0) + coalesce(pg_column_size(old_key), 0) + 64 AS size
        FROM pgferry.journal WHERE table_id <> ALL ($1::int[]) AND NOT ($3::int8multirange @> id)
        ORDER BY id LIMIT $2) j) w
WHERE bytes - size < $4
ORDER BY id)";
/// The most rows kReadAll takes (at most half of batch.max_rows, see read_head): a read at the
/// busy pace (doorbell.busy_interval, 2 ms) of up to ~500,000 rows a second.
constexpr std::int64_t kReadAllRows = 1000;

/// Applied rows not yet acknowledged, in batch.max_rows, above which the stream waits for their
/// flush and ack before it reads on (acks.hpp): every read passes over them.
constexpr std::size_t kMaxUnackedBatches = 4;

/// The span, in seconds, of the moving average of source transactions read per second that
/// doorbell.off_above is compared with.
constexpr double kRateWindow = 0.1;

/// When the head holds no whole transaction (a large one fills it): the transactions in an order
/// consistent with commit order, by their last id, with their sizes. Taking the first few by last
/// id is as safe as the head: if T touched a row after U committed, U's last id is below T's id
/// for that row, so U comes before T. This costs a scan of the journal, so it is the fallback;
/// it is what lets small transactions that interleave with a large one pass it, in one batch,
/// instead of one at a time.
constexpr const char* kByCommitOrder = R"(
SELECT xid, count(*), sum(coalesce(pg_column_size(new_row), 0) + coalesce(pg_column_size(old_key), 0) + 64)
FROM pgferry.journal WHERE table_id <> ALL ($1::int[])
GROUP BY xid ORDER BY max(id) LIMIT $2)";

constexpr const char* kReadTransactions = R"(
SELECT id, xid, table_id, op, old_key, new_row, extract(epoch FROM captured_at)::float8 FROM pgferry.journal
WHERE xid = ANY ($1::xid8[]) AND table_id <> ALL ($2::int[])
ORDER BY id)";

constexpr const char* kReadChunk = R"(
SELECT id, xid, table_id, op, old_key, new_row, extract(epoch FROM captured_at)::float8 FROM pgferry.journal
WHERE xid = $1::xid8 AND id > $2 AND table_id <> ALL ($3::int[])
ORDER BY id LIMIT $4)";

class Worker {
 public:
  Worker(const Config& config, std::vector<StreamTable> tables, Control& control)
      : config_(config),
        tables_(std::move(tables)),
        control_(control),
        tel_(control.telemetry),
        source_rc_(config.reconnect),
        target_rc_(config.reconnect),
        retry_backoff_(BackoffPolicy{config.reconnect.initial_delay, config.reconnect.max_delay, 2.0}),
        ack_backoff_(BackoffPolicy{config.reconnect.initial_delay, config.reconnect.max_delay, 2.0}),
        rng_(std::random_device{}()),
        acks_(config.source, config.target, config.apply.synchronous_commit != "off") {
    for (std::size_t i = 0; i < tables_.size(); ++i) by_id_[tables_[i].table_id] = i;
    acks_.on_wait([&control](PGconn* c) { control.set_cancel(kAcksSlot, c != nullptr ? PQgetCancel(c) : nullptr); });
  }

  int run() {
    while (!control_.stopping()) {
      if (!source_ || !source_->alive()) {
        if (auto s = connect_source(); !s) {
          if (fatal_) return 2;
          if (!connection_failed(source_rc_, Conn::Source, s.error())) return 1;
          continue;
        }
        if (!source_) continue;  // standing by: another run streams this journal
      }
      if (!target_ || !target_->alive()) {
        if (auto s = connect_target(); !s) {
          if (fatal_) return 2;
          if (!connection_failed(target_rc_, Conn::Target, s.error())) return 1;
          continue;
        }
      }
      auto st = do_step();
      if (!st) {
        if (fatal_) return 2;
        if (!step_failed(st.error())) return 1;
        continue;
      }
      retry_backoff_.reset();
    }
    finish_copy();
    // What was applied is acknowledged before the replicator exits (else the next start does it:
    // the target lists it in pgferry.applied_batch).
    // Not after shutdown_timeout cancelled the batch in flight: the time is up.
    if (!control_.cancelled() && !acks_.idle() && source_ && source_->alive() && target_ && target_->alive()) {
      if (auto s = settle_acks(); !s) spdlog::warn("acknowledging the last batches at stop: {}", s.error().describe());
    }
    acks_.stop();
    if (vacuuming_) {  // a vacuum outlives its client until it ends: stop it with the replicator
      if (PGcancel* cancel = PQgetCancel(vacuum_->raw()); cancel != nullptr) {
        std::array<char, 256> err{};
        (void)PQcancel(cancel, err.data(), static_cast<int>(err.size()));
        PQfreeCancel(cancel);
      }
    }
    vacuum_.reset();
    spdlog::info("stopped: {} batches ({} read while the one before was applied), {} journal rows applied since start",
                 batches_, read_ahead_, rows_);
    return 0;
  }

 private:
  /// A batch read ahead (read_ahead), for the tables it skipped.
  struct ReadAhead {
    std::string held;
    std::vector<Change> changes;
    bool chunk = false;  // the next chunk of the large transaction being applied
  };

  // --- connections --------------------------------------------------------------------------

  void drop_source() {
    control_.set_cancel(kSourceSlot, nullptr);
    source_.reset();
    chunk_.reset();  // restarts from the journal's head: acked chunks are gone from it
    ahead_.reset();
  }

  void drop_target() {
    control_.set_cancel(kTargetSlot, nullptr);
    target_.reset();
    acks_.target_lost();  // the flusher goes with it; the reconnect asks what the target lost
  }

  Status connect_source() {
    drop_source();
    auto s = Session::connect(config_.source, "source", "pgferry reader");
    if (!s) return std::move(s).error();
    source_.emplace(std::move(*s));
    control_.set_cancel(kSourceSlot, PQgetCancel(source_->raw()));
    if (auto r = take_stream_lock(); !r || !source_) return r;
    // The journal is a queue: its statistics are taken while it is nearly empty and are wrong
    // by orders of magnitude once a backlog builds. Trusting them, the planner chose a nested
    // loop over a materialized scan of the whole journal for the reader's statement (138 s per
    // batch on a 200k-row backlog instead of 22 ms). Every reader statement has an index, so
    // keep the reader on them; and JIT never pays for these small statements.
    //
    // Plain index scans only, no bitmap scans: a bitmap scan returns rows unordered, so a read
    // with ORDER BY id LIMIT n over it fetches and sorts every match before keeping n. The planner
    // chose that for the chunk read of a large transaction (it expected a few rows per xid): every
    // chunk fetched the whole rest of the transaction, quadratic, 0.6 s per chunk and 60 s for a
    // 1,000,000-row transaction instead of ~10 s. An index scan stops after n rows. And a bitmap
    // is built whole before the first row comes out: as the inner side of the batch read's
    // NOT EXISTS it listed every journal id after the cut once per row of the cut (434 s for one
    // batch, bench/bulk's stall).
    //
    // Planned per execution, never prepared: a generic plan cannot know the batch size and the
    // journal's statistics are always wrong, and for the batch read it chose an anti-join by a
    // range scan of the whole rest of the journal per row (47 s per batch on a 100k-row journal,
    // against ~40 ms planned with the values; planning costs ~0.6 ms).
    if (auto r = source_->run("SET enable_seqscan = off; SET enable_bitmapscan = off; SET jit = off"); !r) return r;
    // The source's clock against ours (the end-to-end latency is measured on the source's clock:
    // captured_at is its). Zero for a sidecar on the same host; a clock set apart is allowed for.
    const auto asked = std::chrono::system_clock::now();
    auto clock = source_->scalar("SELECT extract(epoch FROM clock_timestamp())::float8");
    if (!clock) return std::move(clock).error();
    const auto answered = std::chrono::system_clock::now();
    clock_offset_ = std::strtod(clock->c_str(), nullptr) - epoch_seconds(asked + (answered - asked) / 2);
    bell_on_ = std::nullopt;
    suspects_.clear();
    tel_.connection_up(Conn::Source);
    if (source_rc_.up(Clock::now())) {
      spdlog::info("source (reader) connection re-established after {:.1f} s",
                   std::chrono::duration<double>(source_rc_.last_outage()).count());
    }
    return Ok{};
  }

  /// One run at a time reads a journal: two would apply the same batches in turns, one of them
  /// onto a target the other has moved past (rows set back to older images), and acknowledge each
  /// other's rows. Two runs meet in a rolling deploy that starts the new replicator before the old
  /// one stops. The reader session takes the stream lock; while another session holds it, this run
  /// stands by (source_ reset, asked again every second). A run that stood by starts over as a new
  /// run (Acks::restart) with the target connected again, so the other run's batches and its own
  /// are adopted before it reads.
  Status take_stream_lock() {
    auto got =
        source_->scalar(fmt::format("SELECT pg_try_advisory_lock({}, {})", capture::kLockClass, capture::kStreamLock));
    if (!got) return std::move(got).error();
    const auto now = Clock::now();
    if (*got == "t") {
      if (standing_by_since_) {
        spdlog::info("the other run stopped streaming this source's journal: taking over after {:.1f} s standing by",
                     std::chrono::duration<double>(now - *standing_by_since_).count());
        standing_by_since_.reset();
        acks_.restart();
        drop_target();
      }
      return Ok{};
    }
    if (!standing_by_since_) {
      auto who = source_->scalar(
          "SELECT coalesce(string_agg(format('pid %s, %s%s', a.pid, coalesce(nullif(a.application_name, ''), "
          "'no application_name'), coalesce(' from ' || a.client_addr::text, '')), '; '), 'a session that has ended') "
          "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
          "AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = 2",
          {std::to_string(capture::kLockClass), std::to_string(capture::kStreamLock)});
      standing_by_for_ = who ? *who : who.error().message;
      spdlog::warn(
          "another pgferry run is streaming this source's journal (its reader: {}): standing by until it stops. "
          "Only one run reads a journal at a time; if no other replicator should be running, stop the one that "
          "holds the lock",
          standing_by_for_);
      standing_by_since_ = now;
    }
    // /readyz: the source check fails, with this as its detail.
    tel_.connection_down(Conn::Source,
                         "standing by: another pgferry run streams this journal (its reader: " + standing_by_for_ + ")",
                         std::chrono::seconds(1), std::nullopt);
    drop_source();
    control_.wait_for(std::chrono::seconds(1));
    return Ok{};
  }

  Status connect_target() {
    drop_target();
    auto t = Session::connect(config_.target, "target", "pgferry applier");
    if (!t) return std::move(t).error();
    target_.emplace(std::move(*t));
    control_.set_cancel(kTargetSlot, PQgetCancel(target_->raw()));
    if (auto r = target_->run("SET application_name = 'pgferry applier'"); !r) return r;
    // off (the default): a batch is visible without waiting for its WAL flush; its journal rows
    // are acknowledged once the flusher has flushed past it (acks.hpp).
    if (auto r = target_->run("SET synchronous_commit = " + config_.apply.synchronous_commit); !r) return r;
    if (config_.apply.replica_role) {
      if (auto r = target_->run("SET session_replication_role = replica"); !r) {
        fatal_ = true;
        spdlog::critical("{}", Error{r.error().kind, "apply.replica_role",
                                     "the target role may not SET session_replication_role: " + r.error().message,
                                     "GRANT SET ON PARAMETER session_replication_role TO <pgferry's target role>, "
                                     "or set apply.replica_role: false"}
                                   .describe());
        return r;
      }
    }
    // Tables whose initial copy is pending, running or waiting for its journal rows to be
    // discarded are held back until that is done; stopped tables until an operator resumes them.
    if (auto r = load_table_states(); !r) return r;
    if (auto r = prepare_tables(); !r) return r;
    if (auto r = load_poisoned(); !r) return r;
    // What an earlier run applied is acknowledged, not applied twice; what a target that
    // restarted lost (committed without waiting for the flush) is read again.
    if (auto r = acks_.adopt(*source_, *target_); !r) return r;
    tel_.connection_up(Conn::Target);
    publish_phases();
    if (target_rc_.up(Clock::now())) {
      spdlog::info("target (applier) connection re-established after {:.1f} s",
                   std::chrono::duration<double>(target_rc_.last_outage()).count());
    }
    spdlog::info("connected to source and target; {} table(s), {} held back for their initial copy, {} stopped",
                 tables_.size(), held_.size(), stopped_.size());
    return Ok{};
  }

  /// A connection failed (or could not be opened): log the state change once, wait the backoff.
  /// Returns false when reconnect.max_attempts is exhausted.
  bool connection_failed(Reconnect& rc, Conn conn, const Error& e) {
    const std::string_view name = conn == Conn::Source ? "source (reader)" : "target (applier)";
    const auto d = rc.failed(Clock::now(), unit(rng_));
    tel_.connection_down(conn, e.message, d.delay,
                         d.give_up        ? std::nullopt
                         : d.state_change ? std::optional(ReconnectReason::Lost)
                                          : std::optional(ReconnectReason::ConnectFailed));
    if (d.give_up) {
      spdlog::critical("{} connection: giving up after {} failed attempt(s) (reconnect.max_attempts {}): {}", name,
                       d.attempt, config_.reconnect.max_attempts, e.describe());
      return false;
    }
    if (d.state_change) {
      spdlog::warn("{} connection lost: {}; reconnecting in {} ms (then backing off up to {})", name, e.describe(),
                   d.delay.count(), format_duration(config_.reconnect.max_delay));
    } else if (d.reminder) {
      spdlog::warn("{} connection still down after {} attempts: {}; next attempt in {} ms", name, d.attempt,
                   e.describe(), d.delay.count());
    } else {
      spdlog::debug("{} connection attempt {} failed: {}; next in {} ms", name, d.attempt, e.describe(),
                    d.delay.count());
    }
    pause(d.delay);
    return true;
  }

  /// A step failed: decide from the SQLSTATE (pg_error.hpp) what to do. Row-level and table-level
  /// rejections never get here (the applier isolates them); what is left is a lost connection,
  /// a transient conflict, or something unexpected — each retried with backoff.
  bool step_failed(const Error& e) {
    const bool source_dead = source_ && !source_->alive();
    const bool target_dead = target_ && !target_->alive();
    const auto state = last_sqlstate();
    if (source_ && source_->alive()) (void)source_->run("ROLLBACK");
    if (target_ && target_->alive()) (void)target_->run("ROLLBACK");
    chunk_.reset();
    ahead_.reset();
    const auto remedy = remedy_for(state);
    if (source_dead || target_dead || remedy == Remedy::Reconnect) {
      // Whichever connection is gone (or, when both still look alive, whichever reported it).
      bool src = source_dead;
      bool dst = target_dead;
      if (!src && !dst) {
        src = source_ && source_->last_sqlstate() == state;
        dst = !src;
      }
      if (src) {
        drop_source();
        if (!connection_failed(source_rc_, Conn::Source, e)) return false;
      }
      if (dst) {
        drop_target();
        if (!connection_failed(target_rc_, Conn::Target, e)) return false;
      }
      return true;
    }
    const auto delay = retry_backoff_.next(unit(rng_));
    if (remedy == Remedy::RetryTransaction) {
      spdlog::warn("{} (SQLSTATE {}: a transient conflict; retrying the batch in {} ms)", e.describe(), state,
                   delay.count());
    } else {
      spdlog::error("{} ({}retrying in {} ms)", e.describe(), state.empty() ? "" : "SQLSTATE " + state + "; ",
                    delay.count());
    }
    pause(delay);
    return true;
  }

  /// Sleeps `d` unless stopped; doorbells do not cut it short.
  void pause(milliseconds d) {
    const auto until = Clock::now() + d;
    while (!control_.stopping() && Clock::now() < until) {
      control_.wait_for(std::chrono::duration_cast<milliseconds>(until - Clock::now()));
      control_.clear_wake();
    }
  }

  Status prepare_tables() {
    // Foreign keys among the replicated target tables: upserts go parents first, deletes
    // children first.
    std::vector<std::string> oids;
    for (const auto& t : tables_) {
      auto oid = target_->scalar("SELECT coalesce(to_regclass($1)::oid::text, '')", {t.shape.table.quoted()});
      if (!oid) return std::move(oid).error();
      oids.push_back(*oid);
    }
    std::map<std::string, std::size_t> index_of;
    for (std::size_t i = 0; i < oids.size(); ++i) {
      if (!oids[i].empty()) index_of[oids[i]] = i;
    }
    auto fks = target_->exec(
        "SELECT conrelid::oid::text, confrelid::oid::text FROM pg_constraint WHERE contype = 'f' AND conrelid <> "
        "confrelid");
    if (!fks) return std::move(fks).error();
    std::vector<std::vector<std::size_t>> parents(tables_.size());
    for (int r = 0; r < PQntuples(fks->get()); ++r) {
      auto child = index_of.find(value(fks->get(), r, 0));
      auto parent = index_of.find(value(fks->get(), r, 1));
      if (child != index_of.end() && parent != index_of.end()) parents[child->second].push_back(parent->second);
    }
    // Depth in the parent graph (longest path to a root), with cycles cut at a fixed depth.
    std::vector<int> depth(tables_.size(), -1);
    const std::function<int(std::size_t, int)> depth_of = [&](std::size_t i, int guard) -> int {
      if (depth[i] >= 0) return depth[i];
      if (guard > static_cast<int>(tables_.size())) return 0;  // a cycle: no order is right for it
      int d = 0;
      for (auto p : parents[i]) d = std::max(d, depth_of(p, guard + 1) + 1);
      return depth[i] = d;
    };
    order_.clear();
    for (std::size_t i = 0; i < tables_.size(); ++i) order_.push_back(i);
    for (std::size_t i = 0; i < tables_.size(); ++i) depth_of(i, 0);
    std::stable_sort(order_.begin(), order_.end(), [&](auto a, auto b) { return depth[a] < depth[b]; });

    for (std::size_t i = 0; i < tables_.size(); ++i) {
      auto& t = tables_[i];
      if (!t.broken.empty()) {
        // The target could not take this table's rows at start: it stops (once) for that reason.
        const auto why = std::exchange(t.broken, std::string());
        if (!stopped_.contains(t.table_id)) {
          if (auto s = stop_table(i, runtime_error(t.label, why), "", "stop_table", nullptr); !s) return s;
        }
        continue;
      }
      if (stopped_.contains(t.table_id)) continue;
      if (auto r = prepare_table(i); !r) {
        if (remedy_for(target_->last_sqlstate()) != Remedy::StopTable) return r;
        // The target table or a column is gone, or pgferry lost its rights: that table stops,
        // the others stream.
        if (auto s = stop_table(i, r.error(), target_->last_sqlstate(), "stop_table", nullptr); !s) return s;
      }
    }
    return Ok{};
  }

  Status prepare_table(std::size_t i) {
    const auto& t = tables_[i];
    // Statements of an earlier attempt (the table stopped and resumed) go first; outside a
    // transaction, so the error when there is none is harmless.
    auto existing = target_->query("SELECT name FROM pg_prepared_statements WHERE name IN ($1, $2)",
                                   {delete_name(t), upsert_name(t)});
    if (!existing) return std::move(existing).error();
    for (int r = 0; r < PQntuples(existing->get()); ++r) {
      if (auto d = target_->run("DEALLOCATE " + value(existing->get(), r, 0)); !d) return d;
    }
    if (auto r = target_->prepare(delete_name(t), apply::render_delete(t.shape)); !r) return r;
    return prepare_upsert(*target_, upsert_name(t), [&](apply::Compare c) { return apply::render_upsert(t.shape, c); });
  }

  static std::string upsert_name(const StreamTable& t) { return fmt::format("pgferry_upsert_{}", t.table_id); }
  static std::string delete_name(const StreamTable& t) { return fmt::format("pgferry_delete_{}", t.table_id); }

  Status load_table_states() {
    auto r = target_->exec(
        "SELECT source_table, status, copy_snapshot, coalesce(stop_class, ''), coalesce(guard_confirmed_id, 0), "
        "coalesce(stop_reason, ''), coalesce(extract(epoch FROM last_applied_at)::float8, 0) FROM pgferry.table_state");
    if (!r) return std::move(r).error();
    struct State {
      std::string status, snapshot, stop_class;
      std::int64_t confirmed = 0;
      std::string stop_reason;
    };
    std::map<std::string, State> states;
    double last_applied = 0;
    for (int i = 0; i < PQntuples(r->get()); ++i) {
      last_applied = std::max(last_applied, std::strtod(PQgetvalue(r->get(), i, 6), nullptr));
      states[value(r->get(), i, 0)] = {value(r->get(), i, 1), value(r->get(), i, 2), value(r->get(), i, 3),
                                       std::strtoll(PQgetvalue(r->get(), i, 4), nullptr, 10), value(r->get(), i, 5)};
    }
    // The last apply survives restarts: a replicator that crash-loops must not look fresh.
    if (last_applied > 0 && !applied_once_) tel_.last_applied.Set(last_applied);
    held_.clear();
    stopped_.clear();
    for (const auto& t : tables_) {
      auto it = states.find(t.source_name);
      if (it != states.end()) confirmed_[t.table_id] = it->second.confirmed;
      // A table the guard stopped is looked at again at every start: with the same settings the
      // guard stops it again (and says so in the same sync_errors row); with a higher
      // guard.max_delete_fraction it streams.
      if (it != states.end() && it->second.status == "stopped" && it->second.stop_class != "mass_delete") {
        stopped_.insert(t.table_id);
        stop_reason_[t.table_id] = it->second.stop_reason;
      } else if (it == states.end() || (it->second.status != "streaming" && it->second.status != "stopped") ||
                 !it->second.snapshot.empty()) {
        held_.insert(t.table_id);
      }
    }
    // Tables the guard stopped stream again, to be judged afresh by this process's settings: the
    // open mass_delete error is resolved (a new one is filed if the guard stops the table again).
    for (const auto& t : tables_) {
      auto it = states.find(t.source_name);
      if (it == states.end() || it->second.status != "stopped" || it->second.stop_class != "mass_delete") continue;
      auto u = target_->query(
          "WITH e AS (UPDATE pgferry.sync_errors SET resolved = true, resolved_at = now(), resolution_note = $2 "
          "WHERE source_table = $1 AND error_class = 'mass_delete' AND NOT resolved) "
          "UPDATE pgferry.table_state SET status = 'streaming', stop_class = NULL, stop_reason = NULL, "
          "updated_at = now() WHERE source_table = $1",
          {t.source_name,
           fmt::format("re-checked at start with guard.max_delete_fraction {}", config_.guard.max_delete_fraction)});
      if (!u) return std::move(u).error();
      spdlog::info("{}: stopped by the mass-delete guard before; checking its held deletes again", t.label);
    }
    // A copy that committed but whose journal rows were not discarded yet (a crash in between).
    for (const auto& t : tables_) {
      auto it = states.find(t.source_name);
      if (it != states.end() && it->second.status == "streaming" && !it->second.snapshot.empty()) {
        if (auto s = discard_copied(t, it->second.snapshot); !s) return s;
      }
    }
    return Ok{};
  }

  /// The keys held back behind open sync errors (quarantined changes and what queued behind them).
  Status load_poisoned() {
    auto r = target_->exec(
        "SELECT source_table, row_key::text FROM pgferry.sync_errors "
        "WHERE NOT resolved AND error_class IN ('quarantine_row', 'held_back') AND row_key IS NOT NULL");
    if (!r) return std::move(r).error();
    poisoned_.clear();
    for (int i = 0; i < PQntuples(r->get()); ++i) {
      const auto* t = table_named(value(r->get(), i, 0));
      if (t == nullptr) continue;
      auto c = decode_change(0, "", t->table_id, 'I', "", value(r->get(), i, 1), t->source_key);
      if (c) poisoned_.insert(poison_key(t->table_id, c->key));
    }
    return Ok{};
  }

  const StreamTable* table_named(const std::string& source_name) const {
    for (const auto& t : tables_) {
      if (t.source_name == source_name) return &t;
    }
    return nullptr;
  }

  static std::string poison_key(std::int32_t table_id, const std::string& key) {
    return std::to_string(table_id) + ':' + key;
  }

  // --- one step -----------------------------------------------------------------------------

  std::string last_sqlstate() const {
    if (target_ && !target_->last_sqlstate().empty()) return target_->last_sqlstate();
    if (source_) return source_->last_sqlstate();
    return {};
  }

  Status do_step() {
    poll_vacuum();
    poll_acks();
    if (acks_.rows() >= kMaxUnackedBatches * static_cast<std::size_t>(config_.batch.max_rows)) {
      // Every read passes over the rows applied and not yet acknowledged: keep them few.
      if (auto s = settle_acks(); !s) return s;
    }
    if (auto v = maybe_vacuum(); !v) return v;
    if (auto s = check_requests(); !s) return s;
    if (auto s = poll_copies(); !s) return s;
    control_.clear_wake();
    std::vector<Change> batch;
    // The batch read while the last one was applied, unless a table was held or stopped since.
    if (ahead_ && ahead_->held == skipped_tables() && (!ahead_->chunk || chunk_)) {
      batch = std::move(ahead_->changes);
      if (ahead_->chunk) {
        chunk_->after_id = batch.back().id;
        ++chunk_->chunks;
      }
      ++read_ahead_;
    } else {
      wait_for_pace();
      if (auto s = read_batch(batch); !s) return s;
      count_transactions(batch);
    }
    ahead_.reset();
    if (!batch.empty()) {
      const auto before = batches_;
      auto s = apply_and_ack(batch);
      if (batches_ == before) chunk_.reset();  // nothing acked (a table stopped): read those rows again
      if (!s) return s;
      // Busy (writers commit faster than doorbell.off_above a second): they need not ring; spare
      // them NOTIFY's cluster-wide commit lock. (Not before the batch: a change that rang waits
      // for nothing but its own apply. The pipelined apply has turned it off already, while the
      // target worked; this covers the other apply paths and a turn-off that failed there.)
      if (auto b = disarm_bell(); !b) return b;
      return s;
    }
    if (chunk_) return Ok{};  // a large transaction is being streamed: keep going
    // Caught up while writers are busy: read again at the busy pace (wait_for_pace), bell off.
    if (bell_on_ == false && still_busy()) return Ok{};
    if (bell_on_ != true) {
      // Caught up: arm the bell, then read once more. Writers that saw it disarmed and have not
      // committed yet are remembered (suspects); they may commit without ringing.
      // One round trip: the bell (visible to writers at once: sequences are not transactional),
      // then the snapshot, taken after it.
      auto snap = source_->exec(bell(1) + "; SELECT array_agg(x)::text FROM pg_snapshot_xip(pg_current_snapshot()) x");
      if (!snap) return std::move(snap).error();
      bell_on_ = true;
      tel_.doorbell_armed.Set(1);
      suspects_ = value(snap->get(), 0, 0);
      suspect_wait_ = milliseconds(5);
      return Ok{};
    }
    if (!suspects_.empty()) {
      // Wait a little for the suspects; a doorbell or stop ends the wait early.
      control_.wait_for(suspect_wait_);
      suspect_wait_ = std::min(suspect_wait_ * 2, std::min(config_.poll_interval, milliseconds(1000)));
      auto left = source_->scalar(
          "SELECT array_agg(x)::text FROM unnest($1::xid8[]) x WHERE pg_xact_status(x) = 'in progress'", {suspects_});
      if (!left) return std::move(left).error();
      suspects_ = *left;
      return Ok{};  // read again: a suspect that finished may have committed journal rows
    }
    if (const auto due = acks_.next_poll(Clock::now()); due < config_.poll_interval) {
      // Caught up, with applied batches to flush or acknowledge: wake for them (or a doorbell).
      control_.wait_for(std::chrono::ceil<milliseconds>(due));
    } else if (!pending_copy_.empty() || copying_) {
      control_.wait_for(std::min(config_.poll_interval, milliseconds(200)));
    } else {
      control_.wait_for(config_.poll_interval);
    }
    return Ok{};
  }

  /// Source transactions read per second, as of `now`: a moving average over ~kRateWindow.
  [[nodiscard]] double transaction_rate(Clock::time_point now) const {
    return tx_rate_ * std::exp(-std::chrono::duration<double>(now - rate_at_).count() / kRateWindow);
  }

  /// Counts the source transactions of a batch just read (those of a large transaction's chunks
  /// are not: it is one) into transaction_rate. Counted as they are read, not once applied, so a
  /// burst turns the bell off while its first batch is still being applied.
  void count_transactions(const std::vector<Change>& batch) {
    if (chunk_ || batch.empty()) return;
    std::set<std::string_view> xids;
    for (const auto& c : batch) xids.insert(c.xid);
    const auto now = Clock::now();
    tx_rate_ = transaction_rate(now) + static_cast<double>(xids.size()) / kRateWindow;
    rate_at_ = now;
  }

  /// Writers commit fast enough that the doorbell's NOTIFY would cost them: more than
  /// doorbell.off_above source transactions a second. Below it, ringing costs a writer nothing
  /// measurable (docs/BENCHMARKS.md: at 700 a second, bell on and bell off are alike), while
  /// turning the bell off and on around every batch costs the stream three round trips a turn and
  /// leaves the writers that saw it off to be waited for (suspects).
  [[nodiscard]] bool busy() const {
    const auto off_above = config_.doorbell.off_above;
    return off_above == 0 || transaction_rate(Clock::now()) > static_cast<double>(off_above);
  }

  /// Caught up with the bell off while writers are still busy: their next commit is due within a
  /// millisecond or so. Reading again at the busy pace (wait_for_pace) costs less than arming the
  /// bell, which makes the next writer ring and the stream turn the bell off again: at 1,500
  /// transactions a second that turn came 200–360 times a second. Once the rate decays below
  /// off_above the stream arms and waits, as when idle; with off_above 0 it arms at once.
  [[nodiscard]] bool still_busy() const { return config_.doorbell.off_above > 0 && busy(); }

  /// While the bell is off, a read starts no sooner than doorbell.busy_interval after the one
  /// before. Each read and its batch cost the source, the target and this process ~0.6 ms of CPU
  /// however few rows they carry (docs/BENCHMARKS.md, "Busy pace"), so at thousands of
  /// transactions a second batches of a few milliseconds' writes cost a fraction of batches of
  /// one or two transactions, on the CPUs the writers need. A stop or a request ends the wait.
  void wait_for_pace() {
    if (bell_on_ != false) return;
    const auto due = last_read_ + config_.doorbell.busy_interval;
    const auto now = Clock::now();
    if (due > now) control_.wait_for(std::chrono::ceil<milliseconds>(due - now));
    last_read_ = Clock::now();
  }

  /// Turns the doorbell off while writers are busy (see busy()), unless it is known to be off.
  Status disarm_bell() {
    if (bell_on_ == false || !busy()) return Ok{};
    if (auto r = source_->run(bell(0)); !r) return r;
    bell_on_ = false;
    tel_.doorbell_armed.Set(0);
    tel_.doorbell_disarms.Increment();
    return Ok{};
  }

  /// Sets the doorbell (1: armed, writers ring; 0: off). Its commit does not wait for a WAL
  /// flush: setval writes WAL under a transaction id, so in autocommit each one cost an fsync on
  /// the source — two per busy/idle turn on the stream's path, ~500 turns a second in bench/e2e's
  /// latency runs. Writers see the value at once (sequences are not transactional); one lost in
  /// a source crash is set again when the reader reconnects.
  static std::string bell(int value) {
    return fmt::format("BEGIN; SET LOCAL synchronous_commit = off; SELECT setval('pgferry.doorbell', {}); COMMIT",
                       value);
  }

  // --- reader -------------------------------------------------------------------------------

  /// The tables whose journal rows are not read (int[] text): held for their copy, or stopped.
  std::string skipped_tables() const {
    std::set<std::int32_t> skip = held_;
    skip.insert(stopped_.begin(), stopped_.end());
    return pg_array(skip);
  }

  Status read_batch(std::vector<Change>& out) {
    const std::string held = skipped_tables();
    if (chunk_) return read_chunk(out, held);
    bool whole = true;
    if (auto s = read_head(out, held, acks_.pending_ids(), whole); !s) return s;
    if (whole) return Ok{};
    // The fallback reads the whole journal, applied rows not yet acknowledged included: ack them first.
    if (auto s = settle_acks(); !s) return s;
    return read_by_commit_order(out, held);
  }

  /// The whole transactions at the head of the journal, past the ids in `in_flight`
  /// (int8multirange text, see id_ranges): kReadAll while the journal is nearly empty, else
  /// kReadBatch. `whole` is false when no whole transaction fits in the batch bounds (nothing is
  /// read then).
  Status read_head(std::vector<Change>& out, const std::string& held, const std::string& in_flight, bool& whole) {
    whole = true;
    // Half a batch at most: a backlog's batches, cut to whole transactions, come back a little
    // short of batch.max_rows, and must not look nearly empty (each would be followed by a
    // kReadAll that reads `limit` rows only to find them too many).
    const auto limit = std::clamp<std::int64_t>(config_.batch.max_rows / 2, 1, kReadAllRows);
    if (nearly_empty_) {
      auto all = source_->execute({kReadAll,
                                   {held, std::to_string(limit), in_flight, std::to_string(config_.batch.max_bytes)},
                                   Statement::kReused});
      if (!all) return std::move(all).error();
      const int n = PQntuples(all->get());
      if (n < limit &&
          (n == 0 || std::strtoll(PQgetvalue(all->get(), n - 1, 7), nullptr, 10) <= config_.batch.max_bytes)) {
        return decode(all->get(), out);
      }
      nearly_empty_ = false;  // a backlog: the full read, until a batch is small again
    }
    auto r = source_->query(
        kReadBatch, {held, std::to_string(config_.batch.max_rows), std::to_string(config_.batch.max_bytes), in_flight});
    if (!r) return std::move(r).error();
    whole = !(PQntuples(r->get()) == 1 && PQgetisnull(r->get(), 0, 0) != 0);
    if (!whole) return Ok{};
    nearly_empty_ = PQntuples(r->get()) < limit;
    return decode(r->get(), out);
  }

  /// While the target applies `batch` (`ids`: its ids and those applied and not yet acknowledged,
  /// int8multirange text): the next batch, read past those ids as if they were acknowledged
  /// already. It is the batch a read after the ack would return, in a later snapshot, which is as
  /// good: a transaction a batch may not be applied without committed before it, so it is visible
  /// too, and is either in `batch`, applied before, or in the head with it. While a large
  /// transaction is applied in chunks, its next chunk. Nothing when the read would need the
  /// commit-order fallback (read after the ack, as before) or found nothing (the next step reads
  /// again: a chunked transaction ends there, and an empty journal arms the doorbell only if it
  /// is still empty and writers are no longer busy).
  Status read_ahead(const std::string& ids, std::optional<ReadAhead>& next) {
    next.reset();
    ReadAhead ahead{skipped_tables(), {}};
    if (chunk_) {
      auto r = source_->query(kReadChunk, {chunk_->xid, std::to_string(chunk_->after_id), ahead.held,
                                           std::to_string(config_.batch.max_rows)});
      if (!r) return std::move(r).error();
      if (auto s = decode(r->get(), ahead.changes); !s) return s;
      ahead.chunk = true;
      if (!ahead.changes.empty()) next = std::move(ahead);
      return Ok{};
    }
    bool whole = true;
    if (auto s = read_head(ahead.changes, ahead.held, ids, whole); !s) return s;
    if (whole && !ahead.changes.empty()) next = std::move(ahead);
    return Ok{};
  }

  /// No whole transaction fits in the head: take whole transactions by commit-consistent order
  /// up to the batch bounds, or, when the first alone exceeds them, stream it in chunks.
  Status read_by_commit_order(std::vector<Change>& out, const std::string& held) {
    auto first = source_->query(kByCommitOrder, {held, std::to_string(config_.batch.max_rows)});
    if (!first) return std::move(first).error();
    const PGresult* r = first->get();
    std::vector<std::string_view> xids;
    std::int64_t rows = 0;
    std::int64_t bytes = 0;
    for (int i = 0; i < PQntuples(r); ++i) {
      rows += std::strtoll(PQgetvalue(r, i, 1), nullptr, 10);
      bytes += std::strtoll(PQgetvalue(r, i, 2), nullptr, 10);
      if (rows > config_.batch.max_rows || bytes > config_.batch.max_bytes) break;
      xids.emplace_back(PQgetvalue(r, i, 0));
    }
    if (!xids.empty()) {
      auto batch = source_->query(kReadTransactions, {pg_array(xids), held});
      if (!batch) return std::move(batch).error();
      return decode(batch->get(), out);
    }
    if (PQntuples(r) == 0) return Ok{};
    chunk_ = Chunking{value(r, 0, 0), 0, 0, std::nullopt};
    // The mass-delete guard judges the transaction whole, before its first chunk is applied.
    auto dels = source_->query(
        "SELECT table_id, count(*), max(id) FROM pgferry.journal WHERE xid = $1::xid8 AND op = 'D' GROUP BY table_id",
        {chunk_->xid});
    if (!dels) return std::move(dels).error();
    chunk_deletes_.clear();
    for (int i = 0; i < PQntuples(dels->get()); ++i) {
      chunk_deletes_[static_cast<std::int32_t>(std::strtol(PQgetvalue(dels->get(), i, 0), nullptr, 10))] = {
          std::strtoll(PQgetvalue(dels->get(), i, 1), nullptr, 10),
          std::strtoll(PQgetvalue(dels->get(), i, 2), nullptr, 10)};
    }
    spdlog::warn(
        "source transaction {} ({} journal rows) is larger than one batch (batch.max_rows {}, batch.max_bytes {}): "
        "it spans several target transactions, applied in chunks",
        chunk_->xid, PQgetvalue(r, 0, 1), config_.batch.max_rows, config_.batch.max_bytes);
    ++spanning_;
    return read_chunk(out, held);
  }

  Status read_chunk(std::vector<Change>& out, const std::string& held) {
    auto r = source_->query(
        kReadChunk, {chunk_->xid, std::to_string(chunk_->after_id), held, std::to_string(config_.batch.max_rows)});
    if (!r) return std::move(r).error();
    if (auto s = decode(r->get(), out); !s) return s;
    if (out.empty()) {
      spdlog::info("source transaction {} applied in {} chunk(s)", chunk_->xid, chunk_->chunks);
      if (chunk_->latency) {
        tel_.transactions_applied.Increment();
        tel_.latency.Observe(*chunk_->latency);
      }
      chunk_.reset();
      return Ok{};
    }
    chunk_->after_id = out.back().id;
    ++chunk_->chunks;
    return Ok{};
  }

  Status decode(const PGresult* r, std::vector<Change>& out) {
    const int n = PQntuples(r);
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      const auto table_id = static_cast<std::int32_t>(std::strtol(PQgetvalue(r, i, 2), nullptr, 10));
      auto it = by_id_.find(table_id);
      if (it == by_id_.end()) {
        fatal_ = true;
        return config_error("journal",
                            fmt::format("journal row {} is for captured table id {}, which is not configured",
                                        value(r, i, 0), table_id),
                            "run pgferry setup to remove capture from tables no longer configured");
      }
      const auto& t = tables_[it->second];
      auto c = decode_change(std::strtoll(PQgetvalue(r, i, 0), nullptr, 10), value(r, i, 1), table_id,
                             PQgetvalue(r, i, 3)[0], value(r, i, 4), value(r, i, 5), t.source_key, value(r, i, 6));
      if (!c) return std::move(c).error();
      out.push_back(std::move(*c));
    }
    return Ok{};
  }

  // --- applier ------------------------------------------------------------------------------

  /// A change the target rejected, isolated into pgferry.sync_errors.
  struct Rejected {
    const Change* change = nullptr;
    std::string sqlstate;
    std::string message;
  };

  /// The keys a change touches: its key, and the old key when it moved the row.
  std::vector<std::string> keys_of(const Change& c) const {
    std::vector<std::string> out;
    if (!c.key.empty()) out.push_back(poison_key(c.table_id, c.key));
    if (!c.old_key.empty()) out.push_back(poison_key(c.table_id, c.old_key));
    return out;
  }

  bool is_poisoned(const Change& c) const {
    for (const auto& k : keys_of(c)) {
      if (poisoned_.contains(k)) return true;
    }
    return false;
  }

  void poison(const Change& c) {
    for (auto& k : keys_of(c)) poisoned_.insert(std::move(k));
  }

  /// The statement that takes the shared table locks of every table the batch writes (see
  /// kTableLockClass), first thing in its transaction.
  static std::string table_locks(const std::vector<Change>& batch) {
    std::vector<int> ids;
    for (const auto& c : batch) {
      if (ids.empty() || ids.back() != c.table_id) ids.push_back(c.table_id);
    }
    return apply::render_table_locks(ids, true);
  }

  /// BEGIN, and the batch's table locks.
  Status begin(const std::vector<Change>& batch) { return target_->run("BEGIN; " + table_locks(batch)); }

  /// Splits off the changes of keys held back behind an open sync error. The in-memory set may
  /// be stale (an operator ran `errors retry`): each candidate key is confirmed inside the batch's
  /// transaction, after the table locks, so a retry has either committed or not begun.
  Status split_held(const std::vector<Change>& batch, std::vector<Change>& apply, std::vector<const Change*>& held) {
    std::map<std::int32_t, std::set<std::string>> candidates;  // table -> key objects
    for (const auto& c : batch) {
      if (!is_poisoned(c)) continue;
      const auto& t = tables_[by_id_.at(c.table_id)];
      for (const auto* k : {&c.key, &c.old_key}) {
        if (k->empty()) continue;
        auto o = key_object(*k, t.source_key);
        if (o) candidates[c.table_id].insert(std::move(*o));
      }
    }
    std::set<std::string> still;  // poison keys confirmed open
    for (const auto& [id, keys] : candidates) {
      const auto& t = tables_[by_id_.at(id)];
      std::vector<std::string> list(keys.begin(), keys.end());
      auto r = target_->query(
          "SELECT DISTINCT row_key::text FROM pgferry.sync_errors WHERE NOT resolved AND source_table = $1 "
          "AND error_class IN ('quarantine_row', 'held_back') AND row_key IN (SELECT jsonb_array_elements($2::jsonb))",
          {t.source_name, json_array(list)});
      if (!r) return std::move(r).error();
      for (int i = 0; i < PQntuples(r->get()); ++i) {
        auto c = decode_change(0, "", id, 'I', "", value(r->get(), i, 0), t.source_key);
        if (c) still.insert(poison_key(id, c->key));
      }
    }
    // Keys no longer open were resolved by an operator: forget them.
    for (const auto& c : batch) {
      for (const auto& k : keys_of(c)) {
        if (poisoned_.contains(k) && !still.contains(k)) poisoned_.erase(k);
      }
    }
    apply.clear();
    held.clear();
    for (const auto& c : batch) {
      if (is_poisoned(c)) {
        held.push_back(&c);
        poison(c);  // a held change that moved the row holds its new key back too
      } else {
        apply.push_back(c);
      }
    }
    return Ok{};
  }

  Status apply_and_ack(const std::vector<Change>& batch) {
    const auto started = Clock::now();
    bool stopped_one = false;
    if (auto g = guard(batch, stopped_one); !g) return g;
    if (stopped_one) return Ok{};  // read again without the stopped table: nothing was acked

    // The batch's journal rows as the read-ahead and the ack name them: ids, and their transactions.
    std::vector<std::int64_t> ids;
    std::vector<std::string_view> xids;
    ids.reserve(batch.size());
    xids.reserve(batch.size());
    for (const auto& c : batch) {
      ids.push_back(c.id);
      xids.emplace_back(c.xid);
    }

    // The fast path: the whole batch as one set per table. With no key held back, in one
    // pipeline, while the source reads the next batch.
    std::vector<Change> apply;
    std::vector<const Change*> held;
    std::vector<Rejected> rejected;
    std::optional<ReadAhead> next;
    failed_table_.reset();
    // If the applier's connection dies once this batch's marker is made, its COMMIT may have been
    // sent and have committed: adopt() asks the target after the reconnect.
    const auto no_marker = acks_.last_marker();
    const auto outcome_lost = [&](Status st) {
      if (acks_.last_marker() != no_marker && (!target_ || !target_->alive())) {
        acks_.commit_unknown(ids, xids);
      }
      return st;
    };
    Status s = Ok{};
    bool committed = false;
    if (std::none_of(batch.begin(), batch.end(), [&](const Change& c) { return is_poisoned(c); })) {
      s = apply_pipelined(batch, ids, xids, next);
      committed = static_cast<bool>(s);
    } else {
      if (auto b = begin(batch); !b) return b;
      if (auto h = split_held(batch, apply, held); !h) return h;
      s = apply_actions(coalesce(apply));
    }
    bool isolated = false;
    if (!s) {
      next.reset();
      const auto state = target_->last_sqlstate();
      (void)target_->run("ROLLBACK");
      if (!target_->alive()) return outcome_lost(s);
      const auto remedy = remedy_for(state);
      if (remedy == Remedy::StopTable && failed_table_) {
        return stop_table(*failed_table_, s.error(), state, "stop_table", first_of(batch, *failed_table_));
      }
      if (remedy != Remedy::QuarantineRow) return s;
      // Rejected as a set: find the change(s) the target refuses, apply everything else. Applying
      // change by change in journal order also satisfies constraints the set-based order cannot
      // (a child re-parented before its old parent is deleted; keys equal on the target but
      // written differently, citext 'A' and 'a', that one upsert would touch twice: 21000).
      spdlog::info("batch of {} change(s) rejected as a set ({}: {}); isolating the rejected change(s)", batch.size(),
                   state, s.error().message);
      if (auto b = begin(batch); !b) return b;
      if (auto h = split_held(batch, apply, held); !h) return h;
      failed_table_.reset();
      std::vector<const Change*> to_apply;
      to_apply.reserve(apply.size());
      for (const auto& c : apply) to_apply.push_back(&c);
      if (auto r = bisect(to_apply, held, rejected); !r) {
        const auto st2 = target_->last_sqlstate();
        (void)target_->run("ROLLBACK");
        if (remedy_for(st2) == Remedy::StopTable && failed_table_ && target_->alive()) {
          return stop_table(*failed_table_, r.error(), st2, "stop_table", first_of(batch, *failed_table_));
        }
        return r;
      }
      isolated = true;
    }
    if (!committed) {
      if (auto r = record_errors(rejected, held); !r) return r;
      const auto p = progress(batch);
      if (auto r = target_->query(p.text, p.params); !r) return std::move(r).error();
      const auto m = acks_.marker(ids, xids);
      if (auto r = target_->query(m.text, m.params); !r) return std::move(r).error();  // no COMMIT sent
      if (auto r = target_->run("COMMIT"); !r) return outcome_lost(r);
    }
    // One line per batch (the first rejection as the example); each change at debug.
    for (const auto& x : rejected) {
      spdlog::debug(
          "{}: the target rejected change {} of key {} (journal id {}, source transaction {}): {} (SQLSTATE {})",
          tables_[by_id_.at(x.change->table_id)].label, static_cast<char>(x.change->op), x.change->key, x.change->id,
          x.change->xid, x.message, x.sqlstate);
    }
    if (!rejected.empty()) {
      const auto& x = rejected.front();
      spdlog::warn(
          "the target rejected {} change(s) of this batch, e.g. {}: change {} of key {} (journal id {}, source "
          "transaction {}): {} (SQLSTATE {}); isolated into pgferry.sync_errors, later changes of their keys are held "
          "back until `pgferry errors retry`",
          rejected.size(), tables_[by_id_.at(x.change->table_id)].label, static_cast<char>(x.change->op), x.change->key,
          x.change->id, x.change->xid, x.message, x.sqlstate);
    }
    if (!held.empty()) {
      spdlog::info("{} change(s) held back behind open sync errors of their keys (see pgferry errors list --open)",
                   held.size());
    }
    // Acknowledged (its journal rows deleted) only once the target has it durable, beside the
    // stream (acks.hpp); until then every read passes over its rows, as the read-ahead did. If
    // the replicator dies first, the next start acknowledges it (the target lists it in
    // pgferry.applied_batch); if the target loses it in a crash, it is read and applied again.
    if (lose_commit_ == batches_ + 1) {
      // Tests: the connection dies as the COMMIT's result is on its way; the batch did commit.
      lose_commit_ = 0;
      drop_target();
      return outcome_lost(runtime_error("target database", "PGFERRY_TEST_LOSE_COMMIT: the COMMIT's result was lost"));
    }
    acks_.committed(ids, xids);
    ahead_ = std::move(next);  // read past this batch: valid now that it is committed
    record_applied(batch, rejected, held, source_now(), started);
    ++batches_;
    rows_ += batch.size();
    const auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - started).count();
    spdlog::debug("applied {} change(s) in {} ms{}", batch.size(), ms, isolated ? " (isolating rejected changes)" : "");
    maybe_report();
    return Ok{};
  }

  /// The metrics of a batch the target committed at `applied` (the source's clock, seconds since
  /// the epoch).
  void record_applied(const std::vector<Change>& batch, const std::vector<Rejected>& rejected,
                      const std::vector<const Change*>& held, double applied, Clock::time_point started) {
    std::set<std::int64_t> not_applied;
    for (const auto& x : rejected) {
      not_applied.insert(x.change->id);
      tel_.sync_error(tables_[by_id_.at(x.change->table_id)].config->source.display(), "quarantine_row");
    }
    for (const auto* c : held) {
      not_applied.insert(c->id);
      tel_.sync_error(tables_[by_id_.at(c->table_id)].config->source.display(), "held_back");
    }
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    // Counted per table and op here, added to the series once per batch (not once per row).
    struct Counts {
      std::int64_t insert = 0, update = 0, remove = 0, truncate = 0;
    };
    std::map<std::int32_t, Counts> per_table;
    // Per source transaction, its last captured change (the batch holds whole transactions, or
    // one chunk of one).
    std::map<std::string_view, double> last_captured;
    for (const auto& c : batch) {
      const double at = std::strtod(c.captured_at.c_str(), nullptr);
      auto [it, fresh] = last_captured.try_emplace(c.xid, at);
      if (!fresh) it->second = std::max(it->second, at);
      if (not_applied.contains(c.id)) continue;
      auto& n = per_table[c.table_id];
      ++(c.op == Op::Insert ? n.insert : c.op == Op::Update ? n.update : c.op == Op::Delete ? n.remove : n.truncate);
    }
    for (const auto& [id, n] : per_table) {
      const auto name = tables_[by_id_.at(id)].config->source.display();
      auto& series = tel_.table(name);
      for (auto [counter, value] : {std::pair{series.inserts, n.insert}, std::pair{series.updates, n.update},
                                    std::pair{series.deletes, n.remove}, std::pair{series.truncates, n.truncate}}) {
        if (value > 0) counter->Increment(static_cast<double>(value));
      }
      tel_.table_applied(name, n.insert + n.update + n.remove + n.truncate, now);
    }
    for (const auto& [xid, at] : last_captured) {
      const double latency = std::max(0.0, applied - at);
      if (chunk_) {
        chunk_->latency = latency;  // observed when the transaction's last chunk is in
      } else {
        tel_.transactions_applied.Increment();
        tel_.latency.Observe(latency);
      }
    }
    tel_.batch_rows.Observe(static_cast<double>(batch.size()));
    tel_.apply_duration.Observe(std::chrono::duration<double>(Clock::now() - started).count());
    tel_.last_applied.Set(now);
    applied_once_ = true;
  }

  /// The tables' phases for /status and pgferry_table_stopped / _snapshot_tables_remaining.
  void publish_phases() {
    for (const auto& t : tables_) {
      const auto name = t.config->source.display();
      if (stopped_.contains(t.table_id)) {
        tel_.table_phase(name, "stopped", stop_reason_[t.table_id]);
      } else if (copying_ && copy_table_ == t.table_id) {
        tel_.table_phase(name, "snapshotting");
      } else if (held_.contains(t.table_id)) {
        tel_.table_phase(name, "pending");
      } else {
        tel_.table_phase(name, "streaming");
      }
    }
    tel_.snapshot_tables_remaining.Set(static_cast<double>(held_.size()));
  }

  /// The first change of the table at `table_index` in `batch` (nullptr if it has none).
  const Change* first_of(const std::vector<Change>& batch, std::size_t table_index) const {
    const auto it =
        std::find_if(batch.begin(), batch.end(), [&](const Change& c) { return by_id_.at(c.table_id) == table_index; });
    return it == batch.end() ? nullptr : &*it;
  }

  /// Applies `changes` (journal order) inside the open transaction, isolating every change the
  /// target rejects for a row-level reason: halves are tried under savepoints until a single
  /// change fails alone. Later changes of a rejected key are held back.
  Status bisect(const std::vector<const Change*>& changes, std::vector<const Change*>& held,
                std::vector<Rejected>& rejected) {
    std::vector<const Change*> todo;
    for (const auto* c : changes) {
      if (is_poisoned(*c)) {
        held.push_back(c);
        poison(*c);
      } else {
        todo.push_back(c);
      }
    }
    if (todo.empty()) return Ok{};
    std::vector<Change> set;
    set.reserve(todo.size());
    for (const auto* c : todo) set.push_back(*c);
    if (auto s = target_->run("SAVEPOINT pgferry_isolate"); !s) return s;
    failed_table_.reset();
    auto s = apply_actions(coalesce(set));
    if (s) return target_->run("RELEASE SAVEPOINT pgferry_isolate");
    const auto state = target_->last_sqlstate();
    if (remedy_for(state) != Remedy::QuarantineRow) return s;
    if (auto r = target_->run("ROLLBACK TO SAVEPOINT pgferry_isolate; RELEASE SAVEPOINT pgferry_isolate"); !r) return r;
    if (todo.size() == 1) {
      rejected.push_back(Rejected{todo.front(), state, s.error().message});
      poison(*todo.front());
      return Ok{};
    }
    const auto half = static_cast<std::ptrdiff_t>(todo.size() / 2);
    if (auto r = bisect({todo.begin(), todo.begin() + half}, held, rejected); !r) return r;
    return bisect({todo.begin() + half, todo.end()}, held, rejected);
  }

  /// Writes the rejected changes (one sync_errors row each) and the held-back ones (one open row
  /// per key, updated with the latest change) in the batch's transaction.
  Status record_errors(const std::vector<Rejected>& rejected, const std::vector<const Change*>& held) {
    if (rejected.empty() && held.empty()) return Ok{};
    // `key_array` is the key the row is filed under (the change's key, or the old key of a change
    // that moved the row: the key the target still knows).
    auto row = [&](const Change& c, const std::string& key_array, std::string_view cls, const std::string& sqlstate,
                   const std::string& message, std::string& out) -> Status {
      const auto& t = tables_[by_id_.at(c.table_id)];
      std::string key = "null";
      if (!key_array.empty()) {
        auto k = key_object(key_array, t.source_key);
        if (!k) return std::move(k).error();
        key = std::move(*k);
      }
      out = fmt::format(R"({{"source_table":{},"target_table":{},"op":"{}","row_key":{},"row_image":{},"sqlstate":{},)"
                        R"("error_class":"{}","message":{},"journal_id":{},"source_xid":"{}"}})",
                        json_quote(t.source_name), json_quote(t.shape.table.quoted()), static_cast<char>(c.op), key,
                        c.image.empty() ? "null" : c.image, sqlstate.empty() ? "null" : json_quote(sqlstate), cls,
                        json_quote(message), c.id, c.xid);
      return Ok{};
    };
    std::vector<std::string> rows;
    for (const auto& x : rejected) {
      std::string r;
      const auto& key = x.change->old_key.empty() ? x.change->key : x.change->old_key;
      if (auto s = row(*x.change, key, "quarantine_row", x.sqlstate, x.message, r); !s) return s;
      rows.push_back(std::move(r));
    }
    // Held back: one open row per key, with the latest change. A held change that moved the row
    // holds both keys back, and both are filed: the poisoned keys are re-read from sync_errors,
    // and a new key known only in memory would be forgotten (and its next change applied).
    std::map<std::string, std::pair<const Change*, const std::string*>> latest;
    for (const auto* c : held) {
      for (const auto* k : {&c->old_key, &c->key}) {
        if (!k->empty()) latest[poison_key(c->table_id, *k)] = {c, k};
      }
    }
    std::vector<std::string> held_rows;
    for (const auto& [k, held_change] : latest) {
      std::string r;
      if (auto s = row(*held_change.first, *held_change.second, "held_back", "",
                       "held back: an earlier change of this key is in sync_errors; `pgferry errors retry` applies "
                       "the key's current source row",
                       r);
          !s) {
        return s;
      }
      held_rows.push_back(std::move(r));
    }
    constexpr const char* kColumns =
        "x(source_table text, target_table text, op text, row_key jsonb, row_image jsonb, sqlstate text, "
        "error_class text, message text, journal_id bigint, source_xid text)";
    if (!rows.empty()) {
      auto r = target_->query(
          fmt::format("INSERT INTO pgferry.sync_errors (source_table, target_table, op, row_key, row_image, sqlstate, "
                      "error_class, message, journal_id, source_xid) SELECT source_table, target_table, op::\"char\", "
                      "row_key, row_image, sqlstate, error_class, message, journal_id, source_xid::xid8 "
                      "FROM jsonb_to_recordset($1::jsonb) AS {}",
                      kColumns),
          {json_array(rows)});
      if (!r) return std::move(r).error();
    }
    if (!held_rows.empty()) {
      auto r = target_->query(
          fmt::format(
              "WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS {0}), "
              "upd AS (UPDATE pgferry.sync_errors e SET last_seen = now(), attempts = e.attempts + 1, op = "
              "x.op::\"char\", "
              "row_image = x.row_image, journal_id = x.journal_id, source_xid = x.source_xid::xid8 FROM x "
              "WHERE NOT e.resolved AND e.error_class = 'held_back' AND e.source_table = x.source_table "
              "AND e.row_key = x.row_key RETURNING e.source_table, e.row_key) "
              "INSERT INTO pgferry.sync_errors (source_table, target_table, op, row_key, row_image, sqlstate, "
              "error_class, message, journal_id, source_xid) SELECT source_table, target_table, op::\"char\", row_key, "
              "row_image, sqlstate, error_class, message, journal_id, source_xid::xid8 FROM x WHERE NOT EXISTS "
              "(SELECT 1 FROM upd WHERE upd.source_table = x.source_table AND upd.row_key = x.row_key)",
              kColumns),
          {json_array(held_rows)});
      if (!r) return std::move(r).error();
    }
    return Ok{};
  }

  /// Stops one table: its changes stay in the journal (the reader skips it), the others go on.
  /// Recorded in table_state and, once per open cause, in sync_errors; resumed when an operator
  /// runs `pgferry errors retry` (which sets table_state back to streaming).
  Status stop_table(std::size_t index, const Error& e, const std::string& sqlstate, std::string_view cls,
                    const Change* example, std::int64_t journal_id = 0) {
    const auto& t = tables_[index];
    const std::string op(1, example != nullptr ? static_cast<char>(example->op) : 'U');
    const std::string message = e.message;
    if (auto s = target_->run("BEGIN"); !s) return s;
    auto upd = target_->query(
        "UPDATE pgferry.sync_errors SET last_seen = now(), attempts = attempts + 1, message = $3, sqlstate = $4, "
        "journal_id = coalesce($5::bigint, journal_id) "
        "WHERE NOT resolved AND source_table = $1 AND error_class = $2 RETURNING id",
        {t.source_name, std::string(cls), message, sqlstate.empty() ? Param{} : Param{sqlstate},
         journal_id > 0 ? Param{std::to_string(journal_id)} : Param{}});
    if (!upd) return std::move(upd).error();
    std::string id = PQntuples(upd->get()) > 0 ? value(upd->get(), 0, 0) : "";
    if (id.empty()) {
      auto ins = target_->query(
          "INSERT INTO pgferry.sync_errors (source_table, target_table, op, sqlstate, error_class, message, "
          "journal_id, source_xid) VALUES ($1, $2, $3::\"char\", $4, $5, $6, $7::bigint, $8::xid8) RETURNING id",
          {t.source_name, t.shape.table.quoted(), op, sqlstate.empty() ? Param{} : Param{sqlstate}, std::string(cls),
           message,
           journal_id > 0       ? Param{std::to_string(journal_id)}
           : example != nullptr ? Param{std::to_string(example->id)}
                                : Param{},
           example != nullptr ? Param{example->xid} : Param{}});
      if (!ins) return std::move(ins).error();
      id = value(ins->get(), 0, 0);
    }
    auto st = target_->query(
        "UPDATE pgferry.table_state SET status = 'stopped', stop_class = $2, stop_reason = $3, updated_at = now() "
        "WHERE source_table = $1",
        {t.source_name, std::string(cls), message});
    if (!st) return std::move(st).error();
    if (auto s = target_->run("COMMIT"); !s) return s;
    stopped_.insert(t.table_id);
    stop_reason_[t.table_id] = message;
    tel_.sync_error(t.config->source.display(), cls);
    publish_phases();
    spdlog::error(
        "{}: stopped: {}; its changes stay in the journal, the other tables keep flowing. Fix the cause, then run "
        "`pgferry errors retry {}`",
        t.label, message, id);
    return Ok{};
  }

  /// The mass-delete guard: a batch that would delete more than guard.max_delete_fraction of a
  /// target table holding at least guard.min_rows rows stops that table instead (nothing of it
  /// is applied or acked) until an operator confirms. Deletes journaled at or below the table's
  /// guard_confirmed_id were confirmed already.
  Status guard(const std::vector<Change>& batch, bool& stopped_one) {
    const double fraction = config_.guard.max_delete_fraction;
    if (fraction >= 1.0) return Ok{};
    struct Count {
      std::int64_t deletes = 0;
      bool truncate = false;
      std::int64_t last_id = 0;
    };
    std::map<std::int32_t, Count> counts;
    // Rows of the target the batch deletes: keys whose last change deletes them and that existed
    // before the batch (a row inserted and deleted within it is no loss).
    struct KeyFate {
      bool born = false;
      bool deleted = false;
      std::int64_t id = 0;
    };
    std::map<std::int32_t, std::map<std::string, KeyFate>> fates;
    for (const auto& c : batch) {
      auto& keys = fates[c.table_id];
      auto touch = [&](const std::string& key, bool born_if_new, bool deleted) {
        auto [it, fresh] = keys.try_emplace(key);
        if (fresh) it->second.born = born_if_new;
        it->second.deleted = deleted;
        it->second.id = c.id;
      };
      switch (c.op) {
        case Op::Truncate:
          if (c.id > confirmed_[c.table_id]) {
            counts[c.table_id].truncate = true;
            counts[c.table_id].last_id = std::max(counts[c.table_id].last_id, c.id);
          }
          keys.clear();
          break;
        case Op::Insert:
          touch(c.key, true, false);
          break;
        case Op::Update:
          if (!c.old_key.empty() && c.old_key != c.key) {
            touch(c.old_key, false, true);
            touch(c.key, true, false);
          } else {
            touch(c.key, false, false);
          }
          break;
        case Op::Delete:
          touch(c.key, false, true);
          break;
      }
    }
    for (const auto& [id, keys] : fates) {
      for (const auto& [key, f] : keys) {
        if (!f.deleted || f.born || f.id <= confirmed_[id]) continue;
        auto& n = counts[id];
        ++n.deletes;
        n.last_id = std::max(n.last_id, f.id);
      }
    }
    // A large transaction streamed in chunks is judged whole, at its first chunk.
    for (const auto& [id, n] : chunk_deletes_) {
      if (id_confirmed(id, n.second)) continue;
      auto& c = counts[id];
      c.deletes = std::max(c.deletes, n.first);
      c.last_id = std::max(c.last_id, n.second);
    }
    chunk_deletes_.clear();
    for (auto& [id, n] : counts) {
      if (n.deletes == 0 && !n.truncate) continue;
      const double floor = fraction * static_cast<double>(std::max<std::int64_t>(config_.guard.min_rows, 1));
      if (!n.truncate && static_cast<double>(n.deletes) <= floor) continue;  // cannot exceed on any guarded table
      const auto& t = tables_[by_id_.at(id)];
      auto est = target_->scalar("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)",
                                 {t.shape.table.quoted()});
      if (!est) return std::move(est).error();
      std::int64_t rows = std::strtoll(est->c_str(), nullptr, 10);
      if (rows < 0 || n.truncate || static_cast<double>(n.deletes) > fraction * static_cast<double>(rows) * 0.5) {
        auto exact = target_->scalar(fmt::format("SELECT count(*) FROM {}", t.shape.table.quoted()));
        if (!exact) return std::move(exact).error();
        rows = std::strtoll(exact->c_str(), nullptr, 10);
      }
      if (rows < config_.guard.min_rows) continue;
      if (!n.truncate && static_cast<double>(n.deletes) <= fraction * static_cast<double>(rows)) continue;
      const Change* example = nullptr;
      for (const auto& c : batch) {
        if (c.table_id == id && (c.op == Op::Delete || c.op == Op::Truncate)) example = &c;
      }
      const auto what =
          n.truncate ? fmt::format("a TRUNCATE would empty target table {} ({} rows)", t.shape.table.display(), rows)
                     : fmt::format("a batch would delete {} of the {} rows ({:.0f}%) of target table {}", n.deletes,
                                   rows, 100.0 * static_cast<double>(n.deletes) / static_cast<double>(rows),
                                   t.shape.table.display());
      const Error e = runtime_error(t.label, fmt::format("{}, more than guard.max_delete_fraction ({}): held back by "
                                                         "the mass-delete guard (confirm with pgferry errors retry, or "
                                                         "raise guard.max_delete_fraction and restart)",
                                                         what, fraction));
      if (auto s = stop_table(by_id_.at(id), e, "", "mass_delete", example, n.last_id); !s) return s;
      stopped_one = true;
    }
    return Ok{};
  }

  bool id_confirmed(std::int32_t table_id, std::int64_t last_id) { return last_id <= confirmed_[table_id]; }

  /// The fast path: BEGIN, the table locks, the batch's writes, its progress and COMMIT go to
  /// the target in one pipeline, and while the target works through them the source reads the
  /// batch after this one (`next`, see read_ahead). On failure nothing is committed, failed_table_
  /// names the table whose statement failed (as apply_actions does), and the failed transaction is
  /// left for the caller to roll back. A read ahead that fails costs nothing but the read: the
  /// next step reads again (and meets the source's trouble there, after this batch's ack).
  Status apply_pipelined(const std::vector<Change>& batch, const std::vector<std::int64_t>& ids,
                         const std::vector<std::string_view>& xids, std::optional<ReadAhead>& next) {
    // Everything but the writes is the same text batch after batch: prepared once (kReused).
    std::vector<Statement> statements{{"BEGIN", {}, Statement::kReused}, {table_locks(batch), {}, Statement::kReused}};
    std::vector<std::optional<std::size_t>> table_of(statements.size());
    if (auto p = plan_actions(coalesce(batch), statements, table_of); !p) return p;
    statements.push_back(progress(batch));
    statements.push_back(acks_.marker(ids, xids));
    statements.push_back({"COMMIT", {}, Statement::kReused});
    table_of.resize(statements.size());
    if (auto s = target_->send_pipeline(statements); !s) return s;
    // Busy (see busy()): turn the doorbell off while the target works, so it costs the change
    // that rang nothing. Armed until the batch's commit, it rang for every writer meanwhile: a
    // first batch after an idle spell can take tens of milliseconds on a loaded machine (the step
    // repeats it after the batch, and meets a source failure there).
    const auto quiet_bell = [this] {
      if (auto b = disarm_bell(); !b) {
        spdlog::debug("turning the doorbell off failed (tried again after the batch): {}", b.error().describe());
      }
    };
    quiet_bell();
    // Read ahead past this batch and every one applied and not yet acknowledged.
    wait_for_pace();
    if (auto a = read_ahead(acks_.pending_ids(ids), next); !a) {
      spdlog::debug("reading the next batch ahead failed (read again after this one): {}", a.error().describe());
      next.reset();
    }
    if (next) {
      // What committed while this batch was read and sent: a burst that starts now turns the
      // bell off before this batch's apply ends, not one batch later.
      count_transactions(next->changes);
      quiet_bell();
    }
    std::size_t failed = 0;
    auto done = target_->finish_pipeline(failed);
    if (!done && failed < table_of.size()) failed_table_ = table_of[failed];
    return done;
  }

  /// The statements that write `actions` with the prepared set-based statements, appended to
  /// `out`; `table_of` gets, for each, the index of the table it writes (unset for a multi-table
  /// TRUNCATE).
  Status plan_actions(const std::map<std::int32_t, TableActions>& actions, std::vector<Statement>& out,
                      std::vector<std::optional<std::size_t>>& table_of) {
    // TRUNCATE first, all tables in one statement (foreign keys among them allow nothing else).
    std::string truncate;
    for (const auto& [id, a] : actions) {
      if (!a.truncate) continue;
      truncate += truncate.empty() ? "TRUNCATE " : ", ";
      truncate += tables_[by_id_.at(id)].shape.table.quoted();
    }
    if (!truncate.empty()) {
      out.push_back({truncate, {}});
      table_of.emplace_back();
    }
    // Deletes children first, then upserts parents first.
    for (std::size_t n = order_.size(); n-- > 0;) {
      const auto& t = tables_[order_[n]];
      auto a = actions.find(t.table_id);
      if (a == actions.end() || a->second.deletes.empty()) continue;
      std::vector<std::string> keys;
      keys.reserve(a->second.deletes.size());
      for (const auto& d : a->second.deletes) {
        auto k = key_object(d.key, t.shape.key);
        if (!k) return std::move(k).error();
        keys.push_back(std::move(*k));
      }
      out.push_back({delete_name(t), {json_array(keys)}, Statement::kNamed});
      table_of.emplace_back(order_[n]);
    }
    for (const auto i : order_) {
      const auto& t = tables_[i];
      auto a = actions.find(t.table_id);
      if (a == actions.end() || a->second.upserts.empty()) continue;
      std::vector<std::string> rows;
      rows.reserve(a->second.upserts.size());
      for (const auto& u : a->second.upserts) {
        auto m = map_image(u.image, t.mapping);
        if (!m) return std::move(m).error();
        rows.push_back(std::move(*m));
      }
      out.push_back({upsert_name(t), {json_array(rows)}, Statement::kNamed});
      table_of.emplace_back(i);
    }
    return Ok{};
  }

  /// Writes `actions` inside the open transaction, statement by statement. On failure
  /// failed_table_ names the table whose statement failed (unset for a multi-table TRUNCATE).
  Status apply_actions(const std::map<std::int32_t, TableActions>& actions) {
    std::vector<Statement> statements;
    std::vector<std::optional<std::size_t>> table_of;
    if (auto p = plan_actions(actions, statements, table_of); !p) return p;
    for (std::size_t n = 0; n < statements.size(); ++n) {
      auto r = target_->execute(statements[n]);
      if (!r) {
        failed_table_ = table_of[n];
        return std::move(r).error();
      }
    }
    return Ok{};
  }

  /// The statement that counts `batch` into pgferry.table_state, in the batch's transaction.
  Statement progress(const std::vector<Change>& batch) const {
    std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>> per_table;  // rows, last id
    for (const auto& c : batch) {
      auto& p = per_table[c.table_id];
      ++p.first;
      p.second = std::max(p.second, c.id);
    }
    std::string names = "[";
    std::string counts = "{";
    std::string last = "{";
    bool first = true;
    for (const auto& [id, p] : per_table) {
      if (!first) {
        names += ',';
        counts += ',';
        last += ',';
      }
      first = false;
      names += '"';
      for (char ch : tables_[by_id_.at(id)].source_name) {
        if (ch == '"' || ch == '\\') names += '\\';
        names += ch;
      }
      names += '"';
      counts += std::to_string(p.first);
      last += std::to_string(p.second);
    }
    names += ']';
    counts += '}';
    last += '}';
    return {
        "UPDATE pgferry.table_state s SET rows_applied = s.rows_applied + u.n, last_journal_id = u.last_id, "
        "last_applied_at = now(), updated_at = now() "
        "FROM (SELECT jsonb_array_elements_text($1::jsonb) AS name, unnest($2::bigint[]) AS n, "
        "unnest($3::bigint[]) AS last_id) u WHERE s.source_table = u.name",
        {names, counts, last},
        Statement::kReused};
  }

  /// Vacuums the journal after every journal.vacuum_after_rows acknowledged rows (at most ten
  /// times a second), so its dead rows are reused within seconds instead of piling up for autovacuum's
  /// minute-long naptime. On a connection of its own, without waiting for it: a vacuum of a large
  /// journal takes seconds (4–5 s in bench/e2e's ramps), and run on the reader's connection it
  /// stopped the stream for that long. A role that does not own the journal cannot vacuum it:
  /// autovacuum it is. A vacuum that fails is logged and tried again later; it never stops the
  /// stream.
  Status maybe_vacuum() {
    const auto every = static_cast<std::uint64_t>(config_.journal.vacuum_after_rows);
    if (every == 0 || !may_vacuum_ || vacuuming_ || acked_since_vacuum_ < every) return Ok{};
    // At most 10% of the time: a vacuum scans the whole journal, so while a large backlog drains
    // (1M rows: ~100 ms each) it would otherwise cost more than the rows it lets be reused.
    const auto now = Clock::now();
    if (now - last_vacuum_ < std::max<Clock::duration>(milliseconds(100), 9 * last_vacuum_took_)) return Ok{};
    if (!vacuum_checked_) {
      vacuum_checked_ = true;
      auto owner = source_->scalar(
          "SELECT (pg_has_role(c.relowner, 'USAGE') OR r.rolsuper)::text FROM pg_class c, pg_roles r "
          "WHERE c.oid = 'pgferry.journal'::regclass AND r.rolname = current_user");
      if (!owner) return std::move(owner).error();
      if (*owner != "true") {
        may_vacuum_ = false;
        spdlog::info("the journal is left to autovacuum: this role does not own pgferry.journal");
        return Ok{};
      }
    }
    if (!vacuum_ || !vacuum_->alive()) {
      vacuum_.reset();
      auto v = Session::connect(config_.source, "source", "pgferry vacuum");
      if (!v) {
        vacuum_failed(now, v.error().describe());
        return Ok{};
      }
      vacuum_.emplace(std::move(*v));
    }
    if (PQsendQuery(vacuum_->raw(), "VACUUM (SKIP_LOCKED) pgferry.journal") != 1) {
      vacuum_failed(now, PQerrorMessage(vacuum_->raw()));
      vacuum_.reset();
      return Ok{};
    }
    vacuuming_ = true;
    vacuum_started_ = now;
    vacuum_rows_ = std::exchange(acked_since_vacuum_, 0);
    return Ok{};
  }

  /// Takes the result of a vacuum that has finished, if one has; never waits. Once per step.
  void poll_vacuum() {
    if (!vacuuming_) return;
    PGconn* c = vacuum_->raw();
    if (PQconsumeInput(c) == 0) {
      vacuum_failed(Clock::now(), PQerrorMessage(c));
      vacuum_.reset();
      return;
    }
    if (PQisBusy(c) != 0) return;
    std::string error;
    while (PgResultPtr r{PQgetResult(c)}) {
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK && error.empty()) error = PQresultErrorMessage(r.get());
    }
    if (!error.empty()) {
      vacuum_failed(Clock::now(), error);
      return;
    }
    vacuuming_ = false;
    last_vacuum_ = Clock::now();
    last_vacuum_took_ = last_vacuum_ - vacuum_started_;
    spdlog::debug("vacuumed the journal after {} acknowledged row(s) in {} ms", vacuum_rows_,
                  std::chrono::duration_cast<milliseconds>(last_vacuum_took_).count());
    ++vacuums_;
  }

  /// A vacuum could not start or failed: logged, and tried again no sooner than 9 s later (the
  /// 10% rule, with at least a second counted for this attempt).
  void vacuum_failed(Clock::time_point now, std::string_view why) {
    vacuuming_ = false;
    last_vacuum_ = now;
    last_vacuum_took_ = std::max<Clock::duration>(last_vacuum_took_, std::chrono::seconds(1));
    std::string message(why);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    spdlog::warn("vacuuming the journal failed (left to autovacuum until the next attempt): {}", message);
  }

  /// Moves the flush and the ack of applied batches along (acks.hpp), without waiting. A batch
  /// read ahead past batches it forgot (the target lost, or its flusher) is dropped.
  void poll_acks() {
    if (auto s = acks_.poll(Clock::now()); !s) {
      spdlog::warn("{}", s.error().describe());
      pause(ack_backoff_.next(unit(rng_)));
    } else if (acks_.idle()) {
      ack_backoff_.reset();
    }
    took_acks();
  }

  /// Waits until everything applied is durable and acknowledged.
  Status settle_acks() {
    auto s = acks_.settle(*source_, *target_);
    took_acks();
    return s;
  }

  void took_acks() {
    if (acks_.take_discarded()) {
      ahead_.reset();
      chunk_.reset();
    }
    acked_since_vacuum_ += acks_.take_acked_rows();
  }

  /// Now, on the source's clock (seconds since the epoch).
  double source_now() const { return epoch_seconds(std::chrono::system_clock::now()) + clock_offset_; }

  static double epoch_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
  }

  void maybe_report() {
    const auto now = Clock::now();
    if (now - last_report_ < std::chrono::seconds(10)) return;
    last_report_ = now;
    spdlog::info("applied {} journal row(s) in {} batch(es) so far{}{}", rows_, batches_,
                 spanning_ > 0 ? fmt::format("; {} transaction(s) spanned several batches", spanning_) : "",
                 vacuums_ > 0 ? fmt::format("; journal vacuumed {} time(s)", vacuums_) : "");
  }

  // --- initial copies -----------------------------------------------------------------------

  /// At most once a second, what operators changed on the target: tables to re-copy (`pgferry
  /// snapshot`), stopped tables resumed and mass deletes confirmed (`pgferry errors retry`), keys
  /// no longer held back.
  Status check_requests() {
    const auto now = Clock::now();
    if (now - last_request_check_ < std::chrono::seconds(1)) return Ok{};
    last_request_check_ = now;
    auto r = target_->exec("SELECT source_table, status, coalesce(guard_confirmed_id, 0) FROM pgferry.table_state");
    if (!r) return std::move(r).error();
    for (int i = 0; i < PQntuples(r->get()); ++i) {
      const auto* t = table_named(value(r->get(), i, 0));
      if (t == nullptr) continue;
      const auto status = value(r->get(), i, 1);
      confirmed_[t->table_id] = std::strtoll(PQgetvalue(r->get(), i, 2), nullptr, 10);
      if (status == "pending" && !held_.contains(t->table_id)) {
        spdlog::info("{}: re-copy requested", t->label);
        held_.insert(t->table_id);
        stopped_.erase(t->table_id);
        publish_phases();
      }
      if (status == "streaming" && stopped_.contains(t->table_id)) {
        const auto index = by_id_.at(t->table_id);
        if (auto p = prepare_table(index); !p) {
          if (remedy_for(target_->last_sqlstate()) != Remedy::StopTable) return p;
          if (auto s = stop_table(index, p.error(), target_->last_sqlstate(), "stop_table", nullptr); !s) return s;
          continue;
        }
        stopped_.erase(t->table_id);
        spdlog::info("{}: resumed; applying the changes the journal kept for it", t->label);
        publish_phases();
        control_.wake();
      }
    }
    return load_poisoned();
  }

  /// Starts the copy of the next held table, and finishes copies that are done. Runs between
  /// batches, so no batch of a table is in flight while its copy starts or lands.
  Status poll_copies() {
    if (copying_ && copy_done_.load()) {
      copier_.join();
      copying_ = false;
      const auto& t = tables_[by_id_.at(copy_table_)];
      if (copy_status_) {
        if (auto s = discard_copied(t, copy_snapshot_); !s) return s;
        held_.erase(copy_table_);
        publish_phases();
      } else {
        spdlog::error("{}: initial copy failed: {}; retrying", t.label, copy_status_.error().describe());
        copy_retry_at_ = Clock::now() + copy_backoff_.next(unit(rng_));
      }
    }
    if (copying_ || control_.stopping() || Clock::now() < copy_retry_at_) return Ok{};
    // Parents first, so a child's copy finds the rows its foreign keys point to.
    for (const auto i : order_) {
      const auto id = tables_[i].table_id;
      if (!held_.contains(id)) continue;
      copy_table_ = id;
      copy_done_ = false;
      copying_ = true;
      copy_status_ = Ok{};
      copier_ = std::thread([this] {
        copy_status_ = copy_table(tables_[by_id_.at(copy_table_)]);
        copy_done_ = true;
        control_.wake();
      });
      publish_phases();
      break;
    }
    return Ok{};
  }

  void finish_copy() {
    if (!copying_) return;
    copier_.join();
    copying_ = false;
  }

  /// Deletes the journal rows the copy already contains (transactions visible to its snapshot),
  /// then lets the table stream.
  Status discard_copied(const StreamTable& t, const std::string& snapshot) {
    auto r = source_->query(
        "DELETE FROM pgferry.journal WHERE table_id = $1 AND pg_visible_in_snapshot(xid, $2::pg_snapshot)",
        {std::to_string(t.table_id), snapshot});
    if (!r) return std::move(r).error();
    const auto discarded = std::string(PQcmdTuples(r->get()));
    auto c =
        target_->query("UPDATE pgferry.table_state SET copy_snapshot = NULL WHERE source_table = $1", {t.source_name});
    if (!c) return std::move(c).error();
    spdlog::info("{}: streaming ({} journal row(s) already in the copy discarded)", t.label, discarded);
    return Ok{};
  }

  /// The initial copy of one table, on its own pair of connections (runs on the copier thread).
  Status copy_table(const StreamTable& t) {
    auto src = Session::connect(config_.source, "source", "pgferry copy");
    if (!src) return std::move(src).error();
    auto dst = Session::connect(config_.target, "target", "pgferry copy");
    if (!dst) return std::move(dst).error();
    control_.set_cancel(kCopySourceSlot, PQgetCancel(src->raw()));
    control_.set_cancel(kCopyTargetSlot, PQgetCancel(dst->raw()));
    struct Unregister {
      Control& c;
      ~Unregister() {
        c.set_cancel(kCopySourceSlot, nullptr);
        c.set_cancel(kCopyTargetSlot, nullptr);
      }
    } unregister{control_};
    if (config_.apply.replica_role) {
      if (auto s = dst->run("SET session_replication_role = replica"); !s) return s;
    }
    spdlog::info("{}: initial copy starting", t.label);
    const auto started = Clock::now();
    if (auto s = dst->run("BEGIN"); !s) return s;
    auto prev = dst->query(
        "UPDATE pgferry.table_state SET status = 'snapshotting', snapshot_started = now(), updated_at = now() "
        "WHERE source_table = $1 RETURNING copy_snapshot",
        {t.source_name});
    if (!prev) return std::move(prev).error();
    if (auto s = dst->run("COMMIT"); !s) return s;

    // The trigger exists (setup installed it before), so every change after this snapshot is
    // in the journal, and every change before it is in the copy.
    if (auto s = src->run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); !s) return s;
    auto snap = src->scalar("SELECT pg_current_snapshot()::text");
    if (!snap) return std::move(snap).error();

    std::vector<std::string> source_columns;
    source_columns.reserve(t.mapping.size());
    for (const auto& [s, d] : t.mapping) source_columns.push_back(s);
    const auto in = apply::render_copy_in(t.shape, "pgferry_copy", apply::Compare::Text);
    const auto copy_out = apply::render_copy_out(t.config->source, source_columns, t.config->where);
    auto& copied = *tel_.table(t.config->source.display()).snapshot_rows;
    if (auto s = dst->run("BEGIN"); !s) return s;
    // An empty target table (the first copy, usually) takes the rows straight from COPY, as fast
    // as a COPY pipe; one that has rows (a re-copy) is brought equal to the snapshot through a
    // staging table: its missing rows deleted, the others upserted. The lock keeps other writers
    // (there should be none) from filling it between the check and the COPY; readers and foreign key
    // checks of other tables go on.
    if (auto s = dst->run(fmt::format("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE", t.shape.table.quoted())); !s)
      return s;
    auto empty = dst->scalar(fmt::format("SELECT NOT EXISTS (SELECT FROM {})", t.shape.table.quoted()));
    if (!empty) return std::move(empty).error();
    std::int64_t rows = 0;
    if (*empty == "t") {
      if (auto s = copy_rows(*src, *dst, copy_out, in.copy_direct, copied, rows); !s) return s;
    } else {
      if (auto s = dst->run(in.create_staging); !s) return s;
      if (auto s = copy_rows(*src, *dst, copy_out, in.copy_in, copied, rows); !s) return s;
      if (auto s = dst->run(in.delete_missing); !s) return s;
      auto up = dst->exec(in.upsert);
      if (!up) return std::move(up).error();
    }
    auto done = dst->query(
        "UPDATE pgferry.table_state SET status = 'streaming', snapshot_done = clock_timestamp(), snapshot_rows = $2, "
        "copy_snapshot = $3, stop_reason = NULL, updated_at = now() WHERE source_table = $1",
        {t.source_name, std::to_string(rows), *snap});
    if (!done) return std::move(done).error();
    if (auto s = dst->run("COMMIT"); !s) return s;
    (void)src->run("COMMIT");
    copy_snapshot_ = *snap;
    const auto secs = std::chrono::duration<double>(Clock::now() - started).count();
    spdlog::info("{}: initial copy done: {} row(s) in {:.1f} s{}", t.label, rows, secs,
                 *empty == "t" ? "" : " (the target table had rows: brought equal to the snapshot)");
    return Ok{};
  }

  /// Streams COPY OUT of the source into COPY IN of the target, one row buffer at a time.
  /// Counts every row into `copied` as it passes (pgferry_snapshot_rows_total shows the progress)
  /// and into `rows`.
  static Status copy_rows(Session& src, Session& dst, const std::string& copy_out, const std::string& copy_in,
                          prometheus::Counter& copied, std::int64_t& rows) {
    PgResultPtr out(PQexec(src.raw(), copy_out.c_str()));
    if (PQresultStatus(out.get()) != PGRES_COPY_OUT) {
      return runtime_error("source database", fmt::format("COPY failed: {}", PQerrorMessage(src.raw())));
    }
    PgResultPtr in(PQexec(dst.raw(), copy_in.c_str()));
    if (PQresultStatus(in.get()) != PGRES_COPY_IN) {
      return runtime_error("target database", fmt::format("COPY failed: {}", PQerrorMessage(dst.raw())));
    }
    for (;;) {
      char* buf = nullptr;
      const int n = PQgetCopyData(src.raw(), &buf, 0);
      if (n == -1) break;
      if (n < 0) {
        (void)PQputCopyEnd(dst.raw(), "source COPY failed");
        return runtime_error("source database", fmt::format("COPY failed: {}", PQerrorMessage(src.raw())));
      }
      const int put = PQputCopyData(dst.raw(), buf, n);
      PQfreemem(buf);
      copied.Increment();
      ++rows;
      if (put != 1) return runtime_error("target database", fmt::format("COPY failed: {}", PQerrorMessage(dst.raw())));
    }
    PgResultPtr out_end(PQgetResult(src.raw()));
    if (PQresultStatus(out_end.get()) != PGRES_COMMAND_OK) {
      return runtime_error("source database", fmt::format("COPY failed: {}", PQerrorMessage(src.raw())));
    }
    while (PgResultPtr extra{PQgetResult(src.raw())}) {
    }
    if (PQputCopyEnd(dst.raw(), nullptr) != 1) {
      return runtime_error("target database", fmt::format("COPY failed: {}", PQerrorMessage(dst.raw())));
    }
    PgResultPtr in_end(PQgetResult(dst.raw()));
    if (PQresultStatus(in_end.get()) != PGRES_COMMAND_OK) {
      return runtime_error("target database", fmt::format("COPY failed: {}", PQresultErrorMessage(in_end.get())));
    }
    while (PgResultPtr extra{PQgetResult(dst.raw())}) {
    }
    return Ok{};
  }

  // --- failures -----------------------------------------------------------------------------

  struct Chunking {
    std::string xid;
    std::int64_t after_id = 0;
    int chunks = 0;
    std::optional<double> latency;  // of its last chunk applied: observed once the transaction is whole
  };

  const Config& config_;
  std::vector<StreamTable> tables_;
  Control& control_;
  Telemetry& tel_;
  std::map<std::int32_t, std::size_t> by_id_;
  std::vector<std::size_t> order_;  // parents before children
  std::optional<Session> source_;
  std::optional<Session> target_;
  std::optional<bool> bell_on_;
  Clock::time_point last_read_{};  // when the last read while the bell was off started
  double tx_rate_ = 0;             // see transaction_rate
  Clock::time_point rate_at_;
  // Tests: PGFERRY_TEST_LOSE_COMMIT=N drops the applier's connection right after the Nth batch's
  // COMMIT, as if its result had been lost on the way.
  std::uint64_t lose_commit_ = [] {
    const char* n = std::getenv("PGFERRY_TEST_LOSE_COMMIT");
    return n != nullptr ? std::strtoull(n, nullptr, 10) : 0;
  }();
  std::string suspects_;  // xid8[] text of writers that may have seen the bell disarmed
  milliseconds suspect_wait_{5};
  std::optional<Chunking> chunk_;
  std::optional<ReadAhead> ahead_;  // the next batch, read while the last one was applied
  bool nearly_empty_ = true;        // the last read found few rows: try kReadAll first
  std::set<std::int32_t> held_;     // tables whose journal rows wait for their initial copy
  std::set<std::int32_t> pending_copy_;
  std::thread copier_;
  bool copying_ = false;
  std::atomic<bool> copy_done_{false};
  std::int32_t copy_table_ = 0;
  Status copy_status_ = Ok{};
  std::string copy_snapshot_;
  Backoff copy_backoff_;
  Clock::time_point copy_retry_at_{};
  Reconnect source_rc_;
  Reconnect target_rc_;
  Backoff retry_backoff_;
  Backoff ack_backoff_;                              // after a failed flush or ack
  std::set<std::int32_t> stopped_;                   // tables stopped until an operator resumes them
  std::map<std::int32_t, std::string> stop_reason_;  // why, for /status
  std::set<std::string> poisoned_;                   // poison_key()s held back behind open sync errors
  std::map<std::int32_t, std::int64_t> confirmed_;   // table -> guard_confirmed_id
  std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>> chunk_deletes_;  // chunked txn: deletes, last id
  std::optional<std::size_t> failed_table_;  // the table whose statement failed last
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> unit{0.0, 1.0};
  bool fatal_ = false;
  bool applied_once_ = false;  // by this process: pgferry_last_applied_timestamp_seconds is its own
  std::uint64_t batches_ = 0;
  std::uint64_t rows_ = 0;
  std::uint64_t spanning_ = 0;
  std::uint64_t read_ahead_ = 0;  // batches read while the one before was applied
  std::uint64_t acked_since_vacuum_ = 0;
  std::uint64_t vacuums_ = 0;
  bool may_vacuum_ = true;
  bool vacuum_checked_ = false;
  Clock::time_point last_vacuum_{};
  Clock::duration last_vacuum_took_{};
  std::optional<Session> vacuum_;  // the journal's vacuum runs here, not on the reader's connection
  bool vacuuming_ = false;         // a VACUUM was sent on vacuum_ and has not finished
  Clock::time_point vacuum_started_{};
  std::uint64_t vacuum_rows_ = 0;  // acknowledged rows the running vacuum is for
  Clock::time_point last_report_ = Clock::now();
  Clock::time_point last_request_check_{};
  double clock_offset_ = 0;                             // the source's clock minus ours, seconds
  std::optional<Clock::time_point> standing_by_since_;  // another run holds the stream lock...
  std::string standing_by_for_;                         // ...its reader session
  Acks acks_;  // batches applied, until the source has deleted their journal rows
};

}  // namespace

Status prepare_upsert(Session& target, const std::string& name,
                      const std::function<std::string(apply::Compare)>& render) {
  if (auto r = target.prepare(name, render(apply::Compare::Native)); r || target.last_sqlstate() != "42883") return r;
  return target.prepare(name, render(apply::Compare::Text));
}

int run_stream(const Config& config, std::vector<StreamTable> tables, Control& control) {
  Worker w(config, std::move(tables), control);
  return w.run();
}

}  // namespace pgferry
