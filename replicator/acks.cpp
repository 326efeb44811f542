#include "acks.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <random>
#include <utility>

#include "journal.hpp"

namespace pgferry {
namespace {

using std::chrono::milliseconds;

/// The ack: deletes journal rows (ids $1, their transactions $2) and counts them. Each row is
/// found by its (xid, id) — a key both journal indexes serve with one descent — in a lateral
/// subquery the planner may not flatten (OFFSET 0), so it can only be probed once per row; the
/// rows are then deleted by ctid (a TID scan, no index). Written as `id = ANY ($1)`, a planner
/// that believed the journal empty (statistics from a vacuum of the emptied journal, the normal
/// state of a replicator that keeps up) chose journal_xid_id_idx with `id = ANY` as a condition
/// on its second column: PostgreSQL 15 then scans the whole index once per array element: 1.0 s
/// for one ack of 1,862 ids in bench/e2e, 10.9 s for a later, larger one.
constexpr const char* kAck = R"(
WITH acked AS (
  DELETE FROM pgferry.journal WHERE ctid = ANY (ARRAY(
    SELECT j.ctid FROM unnest($1::bigint[], $2::xid8[]) AS a(id, xid)
    CROSS JOIN LATERAL (SELECT ctid FROM pgferry.journal WHERE xid = a.xid AND id = a.id OFFSET 0) j))
  RETURNING 1
)
SELECT count(*) FROM acked)";

/// The flush ($1: this run, $2: its last batch acknowledged). setval writes WAL under a
/// transaction id, so its commit (the flusher session runs with synchronous_commit = local)
/// flushes the target's WAL up to itself. It deletes the applied_batch rows of batches
/// acknowledged, and reads the highest batch of this run the target has: every batch committed
/// before the flush was sent and numbered up to it is durable once the flush returns; one
/// numbered above it was lost (the statement's snapshot sees every commit that had returned).
constexpr const char* kFlush = R"(
WITH cleaned AS (DELETE FROM pgferry.applied_batch WHERE run = $1 AND batch <= $2)
SELECT setval('pgferry.flush_marker', 1), (SELECT max(batch) FROM pgferry.applied_batch WHERE run = $1))";

/// The same flush, inside a transaction of the applier's own session.
constexpr const char* kFlushHere =
    "BEGIN; SET LOCAL synchronous_commit = local; SELECT setval('pgferry.flush_marker', 1); COMMIT";

/// The highest batch of this run ($1) the target has (NULL: none).
constexpr const char* kSurvivor = "SELECT max(batch) FROM pgferry.applied_batch WHERE run = $1";

/// What runs before this one ($1) applied and did not see acknowledged.
constexpr const char* kOrphans =
    "SELECT run, batch, ids::text, xids::text FROM pgferry.applied_batch WHERE run <> $1 ORDER BY run, batch";

/// How often the flusher flushes (and so the acker acknowledges) at most: the applied rows wait
/// about this long for their ack, every read passing over them meanwhile; each flush is an fsync
/// on the target and each ack one on the source. Flushing after every batch of a stream that
/// idles between batches (bench/e2e's latency runs: ~500 batches/s) put those fsyncs back on the
/// disk the source's own commits wait for. Native logical replication leaves the flush to the
/// walwriter (wal_writer_delay, 200 ms).
constexpr milliseconds kFlushEvery{20};

/// After an ack that failed, the next is sent no sooner than this.
constexpr milliseconds kAckRetry{1000};

/// Collects what a session sent with PQsendQuery returned: "" when it succeeded (the values of
/// its first row in `row`), else the error. `wait` false: returns nullopt while the server is
/// still working.
std::optional<std::string> collect(Session& s, bool wait, std::vector<std::string>* row = nullptr) {
  PGconn* c = s.raw();
  if (!wait) {
    if (PQconsumeInput(c) == 0) return std::string(PQerrorMessage(c));
    if (PQisBusy(c) != 0) return std::nullopt;
  }
  std::string error;
  bool any = false;
  while (PgResultPtr r{PQgetResult(c)}) {
    any = true;
    const auto st = PQresultStatus(r.get());
    if (st == PGRES_TUPLES_OK) {
      if (row != nullptr && PQntuples(r.get()) > 0) {
        row->clear();
        for (int f = 0; f < PQnfields(r.get()); ++f) row->push_back(value(r.get(), 0, f));
      }
    } else if (st != PGRES_COMMAND_OK && error.empty()) {
      error = PQresultErrorMessage(r.get());
    }
  }
  if (!any && error.empty()) error = PQerrorMessage(c);
  if (error.empty() && PQstatus(c) != CONNECTION_OK) error = PQerrorMessage(c);
  while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
  if (error.empty() && !any) error = "no result";
  return error;
}

void cancel(Session& s) {
  if (PGcancel* c = PQgetCancel(s.raw()); c != nullptr) {
    std::array<char, 256> err{};
    (void)PQcancel(c, err.data(), static_cast<int>(err.size()));
    PQfreeCancel(c);
  }
}

// A new run's number in pgferry.applied_batch.
std::string new_run_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

}  // namespace

Acks::Acks(std::string source_conninfo, std::string target_conninfo, bool durable_on_commit)
    : source_conninfo_(std::move(source_conninfo)),
      target_conninfo_(std::move(target_conninfo)),
      durable_on_commit_(durable_on_commit),
      hold_flush_(std::getenv("PGFERRY_TEST_HOLD_FLUSH") != nullptr) {
  run_.id = new_run_id();
}

void Acks::restart() {
  stop();
  run_ = Run{};
  run_.id = new_run_id();
  discarded_ = true;  // whatever was read past this run's batches is stale
}

Acks::~Acks() { stop(); }

Statement Acks::marker(const std::vector<std::int64_t>& ids, const std::vector<std::string_view>& xids) {
  // A number no attempt had: a COMMIT whose outcome the applier never learned (the connection
  // died meanwhile) may have committed its marker, and the batch is then applied again.
  return {"INSERT INTO pgferry.applied_batch (run, batch, ids, xids) VALUES ($1, $2, $3, $4)",
          {run_.id, std::to_string(run_.next_seq++), pg_array(ids), pg_array(xids)},
          Statement::kReused};
}

Acks::Batch Acks::last_marker_batch(const std::vector<std::int64_t>& ids,
                                    const std::vector<std::string_view>& xids) const {
  Batch b;
  b.ids = ids;
  b.xids.assign(xids.begin(), xids.end());
  b.seq = last_marker();
  return b;
}

void Acks::push_committed(Batch b) {
  run_.committed_below = run_.next_seq;
  b.durable = durable_on_commit_;
  run_.rows += b.ids.size();
  run_.pending.push_back(std::move(b));
}

void Acks::committed(const std::vector<std::int64_t>& ids, const std::vector<std::string_view>& xids) {
  push_committed(last_marker_batch(ids, xids));
}

void Acks::commit_unknown(const std::vector<std::int64_t>& ids, const std::vector<std::string_view>& xids) {
  run_.unknown = last_marker_batch(ids, xids);
}

bool Acks::waiting_for_flush() const noexcept {
  return !run_.pending.empty() && !run_.pending.back().durable;  // durable batches are a prefix
}

std::string Acks::pending_ids(const std::vector<std::int64_t>& extra) const {
  std::vector<std::int64_t> ids = extra;
  for (const auto& b : run_.pending) ids.insert(ids.end(), b.ids.begin(), b.ids.end());
  return id_ranges(std::move(ids));
}

Status Acks::adopt(Session& source, Session& target) {
  // This run's batches the target lost in a crash: read again, in order.
  if (waiting_for_flush()) {
    auto r = target.scalar(kSurvivor, {run_.id});
    if (!r) return std::move(r).error();
    lost_after(r->empty() ? -1 : std::stoll(*r));
  }
  // The batch whose COMMIT result was lost: its marker is there if and only if it committed (and
  // survived whatever ended the connection). Applied again, its rejected changes would be filed
  // in sync_errors twice and its rows counted twice in table_state.
  if (auto b = std::exchange(run_.unknown, std::nullopt); b && b->seq == last_marker()) {
    auto there = target.scalar("SELECT count(*) FROM pgferry.applied_batch WHERE run = $1 AND batch = $2",
                               {run_.id, std::to_string(b->seq)});
    if (!there) {
      run_.unknown = std::move(b);  // asked again after the next reconnect
      return std::move(there).error();
    }
    if (*there != "0") {
      spdlog::info(
          "the batch whose COMMIT result was lost ({} journal row(s)) had committed on the target: not applied again",
          b->ids.size());
      push_committed(std::move(*b));
    } else {
      spdlog::info("the batch whose COMMIT result was lost ({} journal row(s)) had not committed: applied again",
                   b->ids.size());
    }
  }
  // Earlier runs' batches: applied, perhaps not flushed yet (a flush here covers every commit
  // this session can see), then acknowledged, then forgotten.
  auto orphans = target.query(kOrphans, {run_.id});
  if (!orphans) return std::move(orphans).error();
  const PGresult* r = orphans->get();
  const int n = PQntuples(r);
  if (n == 0) return Ok{};
  if (auto f = target.run(kFlushHere); !f) return f;
  std::vector<std::string> runs;
  std::vector<std::string> batches;
  std::string ids;
  std::string xids;
  for (int i = 0; i < n; ++i) {
    runs.push_back(value(r, i, 0));
    batches.push_back(value(r, i, 1));
    const std::string a = value(r, i, 2);
    const std::string x = value(r, i, 3);
    if (a.size() <= 2) continue;  // "{}"
    ids += (ids.empty() ? "" : ",") + a.substr(1, a.size() - 2);
    xids += (xids.empty() ? "" : ",") + x.substr(1, x.size() - 2);
  }
  auto acked = source.query(kAck, {"{" + ids + "}", "{" + xids + "}"});
  if (!acked) return std::move(acked).error();
  auto gone = target.query(
      "DELETE FROM pgferry.applied_batch WHERE (run, batch) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))",
      {pg_array(runs), pg_array(batches)});
  if (!gone) return std::move(gone).error();
  spdlog::info(
      "acknowledged {} batch(es) ({} journal row(s)) an earlier run applied and had not acknowledged (it stopped "
      "before the ack)",
      n, PQgetvalue(acked->get(), 0, 0));
  return Ok{};
}

Status Acks::poll(Clock::time_point now) {
  Status out = Ok{};
  if (auto e = collect_flush(false); e) out = std::move(*e);
  if (auto e = collect_ack(false); e && out) out = std::move(*e);
  if (!flushing_ && (waiting_for_flush() || run_.cleaned < run_.acked) && !hold_flush_ &&
      now - last_flush_ >= kFlushEvery) {
    if (auto e = send_flush(now); e && out) out = std::move(*e);
  }
  if (acking_ == 0 && !run_.pending.empty() && run_.pending.front().durable && now >= acker_retry_at_) {
    if (auto e = send_ack(now); e && out) out = std::move(*e);
  }
  return out;
}

Acks::Clock::duration Acks::next_poll(Clock::time_point now) const {
  constexpr Clock::duration kSoon = milliseconds(1);
  if (flushing_ || acking_ > 0) return kSoon;  // collected as soon as it is back
  Clock::duration wait = Clock::duration::max();
  if (waiting_for_flush() || run_.cleaned < run_.acked) wait = std::max(kSoon, last_flush_ + kFlushEvery - now);
  if (!run_.pending.empty() && run_.pending.front().durable)
    wait = std::min(wait, std::max(kSoon, acker_retry_at_ - now));
  return wait;
}

Status Acks::settle(Session& source, Session& target) {
  Status out = Ok{};
  // The flush and the ack in flight, waited for where a cancel can reach the wait.
  const auto waiting_on = [this](PGconn* c) {
    if (on_wait_) on_wait_(c);
  };
  if (flushing_) waiting_on(flusher_->raw());
  if (auto e = collect_flush(true); e) out = std::move(*e);
  if (acking_ > 0) waiting_on(acker_->raw());
  if (auto e = collect_ack(true); e && out) out = std::move(*e);
  waiting_on(nullptr);
  if (!out) return out;
  if (waiting_for_flush()) {
    // On the applier's own session: it committed them, so its flush covers them all.
    if (auto r = target.run(kFlushHere); !r) return r;
    for (auto& b : run_.pending) b.durable = true;
  }
  if (!run_.pending.empty()) {
    auto r = source.query(kAck, ack_params(run_.pending.size()));
    if (!r) return std::move(r).error();
    acked(run_.pending.size());
  }
  if (run_.cleaned < run_.acked) {
    auto r = target.query("DELETE FROM pgferry.applied_batch WHERE run = $1 AND batch <= $2",
                          {run_.id, std::to_string(run_.acked)});
    if (!r) return std::move(r).error();
    run_.cleaned = run_.acked;
  }
  return Ok{};
}

void Acks::target_lost() {
  flusher_.reset();
  flushing_.reset();
}

bool Acks::take_discarded() noexcept { return std::exchange(discarded_, false); }

std::uint64_t Acks::take_acked_rows() noexcept { return std::exchange(acked_rows_, 0); }

void Acks::stop() {
  if (flushing_ && flusher_) cancel(*flusher_);
  if (acking_ > 0 && acker_) cancel(*acker_);
  flusher_.reset();
  flushing_.reset();
  acker_.reset();
  acking_ = 0;
}

std::optional<Error> Acks::collect_flush(bool wait) {
  if (!flushing_) return std::nullopt;
  std::vector<std::string> row;
  auto e = collect(*flusher_, wait, &row);
  if (!e) return std::nullopt;  // still working
  const auto covers = *flushing_;
  flushing_.reset();
  if (e->empty() && row.size() == 2) {
    run_.cleaned = std::max(run_.cleaned, run_.cleaning);
    const std::int64_t survivor = row[1].empty() ? -1 : std::stoll(row[1]);
    bool lost = false;
    for (auto& b : run_.pending) {
      if (b.seq >= covers) break;
      if (b.seq <= survivor) {
        b.durable = true;
      } else if (!b.durable) {
        lost = true;  // committed before the flush was sent, and not there: a crash lost it
      }
    }
    if (lost) lost_after(survivor);
    return std::nullopt;
  }
  flusher_.reset();
  return runtime_error("target database",
                       fmt::format("flushing the target's WAL (setval on pgferry.flush_marker) failed: {}", *e),
                       "check the target's log; pgferry reconnects and applies the batches not known durable again. "
                       "If it lacks rights, GRANT USAGE, UPDATE ON SEQUENCE pgferry.flush_marker to its role, or set "
                       "apply.synchronous_commit: local");
}

std::optional<Error> Acks::collect_ack(bool wait) {
  if (acking_ == 0) return std::nullopt;
  auto e = collect(*acker_, wait);
  if (!e) return std::nullopt;
  const auto batches = std::exchange(acking_, 0);
  if (e->empty()) {
    acked(batches);
    return std::nullopt;
  }
  acker_.reset();
  acker_retry_at_ = Clock::now() + kAckRetry;
  return runtime_error("source database", fmt::format("acknowledging applied journal rows failed: {}", *e),
                       "check the source's log; the rows stay in the journal, read past, and the ack is sent again");
}

std::optional<Error> Acks::send_flush(Clock::time_point now) {
  if (!flusher_ || !flusher_->alive()) {
    flusher_.reset();
    last_flush_ = now;  // a target that refuses connections is not asked again at once
    auto s = Session::connect(target_conninfo_, "target", "pgferry flusher");
    if (!s) return std::move(s).error();
    if (auto r = s->run("SET synchronous_commit = local"); !r) return std::move(r).error();
    flusher_.emplace(std::move(*s));
  }
  const std::string cleaning = std::to_string(run_.acked);
  const std::array<const char*, 2> values{run_.id.c_str(), cleaning.c_str()};
  if (PQsendQueryParams(flusher_->raw(), kFlush, 2, nullptr, values.data(), nullptr, nullptr, 0) != 1) {
    std::string why = PQerrorMessage(flusher_->raw());
    flusher_.reset();
    return runtime_error("target database", "cannot send the flush of the target's WAL: " + why);
  }
  flushing_ = run_.committed_below;
  run_.cleaning = run_.acked;
  last_flush_ = now;
  return std::nullopt;
}

std::optional<Error> Acks::send_ack(Clock::time_point now) {
  if (!acker_ || !acker_->alive()) {
    acker_.reset();
    auto s = Session::connect(source_conninfo_, "source", "pgferry acker");
    if (!s) {
      acker_retry_at_ = now + kAckRetry;
      return std::move(s).error();
    }
    acker_.emplace(std::move(*s));
  }
  std::size_t batches = 0;
  while (batches < run_.pending.size() && run_.pending[batches].durable) ++batches;
  const auto params = ack_params(batches);
  const std::array<const char*, 2> values{params[0]->c_str(), params[1]->c_str()};
  if (PQsendQueryParams(acker_->raw(), kAck, 2, nullptr, values.data(), nullptr, nullptr, 0) != 1) {
    std::string why = PQerrorMessage(acker_->raw());
    acker_.reset();
    acker_retry_at_ = now + kAckRetry;
    return runtime_error("source database", "cannot send the ack of applied journal rows: " + why);
  }
  acking_ = batches;
  return std::nullopt;
}

void Acks::lost_after(std::int64_t survivor) {
  std::size_t batches = 0;
  std::size_t rows = 0;
  while (!run_.pending.empty() && run_.pending.back().seq > survivor) {
    rows += run_.pending.back().ids.size();
    run_.pending.pop_back();
    ++batches;
  }
  // An ack in flight is for durable batches, which survive any crash: none of these.
  run_.rows -= rows;
  if (batches > 0) {
    discarded_ = true;
    spdlog::warn(
        "{} applied batch(es) ({} journal row(s)) are missing on the target: it restarted and lost them (they were "
        "committed without waiting for the WAL flush); read and applied again",
        batches, rows);
  }
}

void Acks::acked(std::size_t batches) {
  for (std::size_t i = 0; i < batches && !run_.pending.empty(); ++i) {
    run_.acked = run_.pending.front().seq;
    run_.rows -= run_.pending.front().ids.size();
    acked_rows_ += run_.pending.front().ids.size();
    run_.pending.pop_front();
  }
}

std::vector<Param> Acks::ack_params(std::size_t batches) const {
  std::string ids = "{";
  std::string xids = "{";
  for (std::size_t i = 0; i < batches; ++i) {
    const auto& b = run_.pending[i];
    for (std::size_t k = 0; k < b.ids.size(); ++k) {
      if (ids.size() > 1) {
        ids += ',';
        xids += ',';
      }
      ids += std::to_string(b.ids[k]);
      xids += b.xids[k];
    }
  }
  return {ids + '}', xids + '}'};
}

}  // namespace pgferry
