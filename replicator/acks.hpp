#pragma once
// The acknowledgement of applied batches: deleting their journal rows from the source once the
// target has them durably, without the stream waiting for either.
//
// The applier commits with apply.synchronous_commit (default off, as native logical
// replication's apply worker): a batch is visible on the target as soon as it commits, before its
// WAL is flushed. Its transaction also inserts a row into pgferry.applied_batch (this run, the
// batch's number, its journal ids). Its journal rows stay in the journal — read past by every
// later read, like a batch in flight — until
//   1. the target has flushed its commit: a `flusher` session commits a setval() of
//      pgferry.flush_marker with synchronous_commit = local, which flushes the target's WAL up to
//      itself and so every batch committed before it was sent (at most every 20 ms); then
//   2. an `acker` session on the source deletes them (the ack); then
//   3. the flusher's next flush deletes the batch's applied_batch row.
// Flusher and acker run beside the stream on connections of their own, sent without waiting and
// collected between batches.
//
// Nothing is applied twice, and nothing lost is left out:
//   * a target crash loses a suffix of the commits, so the batches of this run it lost are those
//     numbered above the highest it still has: forgotten and read again, onto exactly the state
//     they were first applied to (check_survivors, and every flush);
//   * a batch whose COMMIT result was lost with the connection counts as applied if the target
//     has its applied_batch row once the applier has reconnected, else it is read again (adopt);
//   * a run that starts after a crash of the replicator acknowledges what the target says an
//     earlier run applied (adopt) before it reads. Replaying those batches instead, onto a
//     target that is ahead of them, would pass through states its constraints may refuse (a
//     child inserted whose parent a later batch deleted).
// A failed ack is sent again later; deleting journal rows already deleted deletes nothing.
// See docs/ARCHITECTURE.md, "Deferred acknowledgement".

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pg.hpp"
#include "result.hpp"

namespace pgferry {

class Acks {
 public:
  using Clock = std::chrono::steady_clock;

  /// `durable_on_commit`: the applier's commits wait for their own durability (a
  /// synchronous_commit other than off), so a committed batch is acknowledged at once.
  Acks(std::string source_conninfo, std::string target_conninfo, bool durable_on_commit);
  ~Acks();
  Acks(const Acks&) = delete;
  Acks& operator=(const Acks&) = delete;

  /// The statement that records the next batch (journal ids `ids`, transactions `xids`) as
  /// applied, for its own transaction: each call numbers a new attempt.
  [[nodiscard]] Statement marker(const std::vector<std::int64_t>& ids, const std::vector<std::string_view>& xids);
  /// A batch whose COMMIT on the applier session has returned (its marker the last one made).
  void committed(const std::vector<std::int64_t>& ids, const std::vector<std::string_view>& xids);

  /// The number of the last marker made (the batch whose transaction it is in).
  [[nodiscard]] std::int64_t last_marker() const noexcept { return run_.next_seq - 1; }
  /// The connection died after the batch of the last marker had sent its COMMIT: whether it
  /// committed is unknown until the applier reconnects, when adopt() looks for its marker.
  void commit_unknown(const std::vector<std::int64_t>& ids, const std::vector<std::string_view>& xids);

  /// int8multirange text (id_ranges) of every journal id applied and not yet acknowledged, and
  /// of `extra`: what a read ahead passes over.
  [[nodiscard]] std::string pending_ids(const std::vector<std::int64_t>& extra = {}) const;
  /// Journal rows applied and not yet acknowledged.
  [[nodiscard]] std::size_t rows() const noexcept { return run_.rows; }
  /// Nothing waits to be flushed, acknowledged or cleaned up, and nothing is in flight.
  [[nodiscard]] bool idle() const noexcept {
    return run_.pending.empty() && !flushing_ && acking_ == 0 && run_.cleaned >= run_.acked;
  }

  /// After the applier (re)connected, before it applies anything: acknowledges what earlier runs
  /// applied (on `source`), and forgets the batches of this run the target no longer has (a
  /// crash lost them), so they are read and applied again, in order. A batch whose COMMIT result
  /// was lost (commit_unknown) is taken as committed if the target has its marker, else forgotten
  /// and read again.
  [[nodiscard]] Status adopt(Session& source, Session& target);
  /// Takes a flush or ack that has finished, and sends the next, never waiting for a result.
  /// A flush is sent at most every 20 ms. A flush that finds batches lost forgets them
  /// (take_discarded); a failed ack is sent again later.
  [[nodiscard]] Status poll(Clock::time_point now);
  /// When poll next has something to do (max(): nothing until more is applied).
  [[nodiscard]] Clock::duration next_poll(Clock::time_point now) const;
  /// Everything applied made durable (a flush on the applier session `target`) and
  /// acknowledged (on the reader session `source`), waiting for it.
  [[nodiscard]] Status settle(Session& source, Session& target);
  /// The applier's connection was lost: the flusher's goes too (adopt follows the reconnect).
  void target_lost();
  /// Whether batches were forgotten since the last call: a batch read past them must be dropped.
  [[nodiscard]] bool take_discarded() noexcept;
  /// Journal rows acknowledged since the last call.
  [[nodiscard]] std::uint64_t take_acked_rows() noexcept;
  /// Ends what is in flight (cancelled) and closes both connections.
  void stop();
  /// stop(), then starts over as a new run (a new number in pgferry.applied_batch) with nothing
  /// pending: what this run applied is adopted, like an earlier run's, by the next adopt().
  /// After another run streamed the journal meanwhile, this run's picture of it is stale.
  void restart();
  /// `hook` is called with the connection settle() is about to wait on (flusher or acker), and
  /// with nullptr when the wait is over: whoever must be able to cancel the wait (shutdown_timeout)
  /// registers it.
  void on_wait(std::function<void(PGconn*)> hook) { on_wait_ = std::move(hook); }

 private:
  struct Batch {
    std::vector<std::int64_t> ids;
    std::vector<std::string> xids;
    std::int64_t seq = 0;  // its number in this run: commit order on the applier session
    bool durable = false;  // the target has flushed it
  };

  /// The batch of journal rows `ids` (of transactions `xids`) under the last marker made.
  [[nodiscard]] Batch last_marker_batch(const std::vector<std::int64_t>& ids,
                                        const std::vector<std::string_view>& xids) const;
  /// Takes `b` as committed on the target: pending until acknowledged.
  void push_committed(Batch b);
  std::optional<Error> collect_flush(bool wait);
  std::optional<Error> collect_ack(bool wait);
  std::optional<Error> send_flush(Clock::time_point now);
  std::optional<Error> send_ack(Clock::time_point now);
  /// Forgets the batches numbered above `survivor` (the target lost them).
  void lost_after(std::int64_t survivor);
  void acked(std::size_t batches);
  [[nodiscard]] bool waiting_for_flush() const noexcept;
  /// The ack statement's parameters (bigint[] and xid8[] text) for the first `batches` pending.
  [[nodiscard]] std::vector<Param> ack_params(std::size_t batches) const;

  std::string source_conninfo_;
  std::string target_conninfo_;
  bool durable_on_commit_;
  bool hold_flush_;  // tests: PGFERRY_TEST_HOLD_FLUSH keeps the flusher from flushing

  /// This run's batches: restart() starts all of it over.
  struct Run {
    std::string id;                // in pgferry.applied_batch
    std::deque<Batch> pending;     // committed, not yet acknowledged, in commit order
    std::optional<Batch> unknown;  // its COMMIT sent, the result lost (commit_unknown)
    std::size_t rows = 0;
    // Batch numbers follow the applier's commit order; a number is used once, by one attempt.
    std::int64_t next_seq = 0;         // the next attempt's number
    std::int64_t committed_below = 0;  // every batch committed so far is numbered below this
    std::int64_t acked = -1;           // batches numbered up to this are acknowledged...
    std::int64_t cleaned = -1;         // ...and up to this their applied_batch rows deleted
    std::int64_t cleaning = -1;        // the applied_batch rows the flush in flight deletes
  };
  Run run_;
  bool discarded_ = false;
  std::uint64_t acked_rows_ = 0;

  std::optional<Session> flusher_;
  std::optional<std::int64_t> flushing_;  // a flush in flight: for the batches numbered below this
  Clock::time_point last_flush_{};

  std::function<void(PGconn*)> on_wait_;

  std::optional<Session> acker_;
  std::size_t acking_ = 0;  // the pending batches (at the front) the ack in flight deletes
  Clock::time_point acker_retry_at_{};
};

}  // namespace pgferry
