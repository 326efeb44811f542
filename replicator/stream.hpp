#pragma once
// The ferry: the worker that drains the journal into the target. It runs on its own thread with
// blocking libpq connections (one source reader, one target applier, plus a copier pair while an
// initial copy runs; the flusher, the acker and the journal's vacuum on connections of their own,
// never waited for), so the event loop that owns the LISTEN socket, the timers and the signals
// never blocks. The loop talks to it only through Control.
//
// One step of the worker:
//   read the next batch of whole source transactions (reader) -> coalesce per row ->
//   apply in one target transaction (applier); beside the stream, once the target has flushed
//   it, delete the applied journal rows (ack; acks.hpp).
// When a read comes back empty it arms the doorbell, waits for every transaction that may have
// seen it disarmed, and reads once more before it sleeps (see docs/ARCHITECTURE.md, "Doorbell").

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "apply_sql.hpp"
#include "capture_sql.hpp"
#include "config.hpp"
#include "result.hpp"
#include "telemetry.hpp"

struct pg_cancel;

namespace pgferry {

/// What the event loop and the worker share. Every member is safe to call from any thread.
class Control {
 public:
  Control() = default;
  ~Control();
  Control(const Control&) = delete;
  Control& operator=(const Control&) = delete;
  /// Something may be in the journal (doorbell, LISTEN re-established, `snapshot` command).
  void wake();
  /// Stop after the batch in flight.
  void request_stop();
  [[nodiscard]] bool stopping() const noexcept { return stop_.load(); }
  /// Sleeps until woken, stopped or `timeout` passed. Returns true when woken or stopped.
  bool wait_for(std::chrono::milliseconds timeout);
  /// Clears a pending wake-up before a read, so a doorbell during the read causes another one.
  void clear_wake();
  /// The worker registers the cancel handles of its connections; cancel_all() aborts whatever
  /// statement runs now (the batch in flight is then rolled back).
  void set_cancel(int slot, pg_cancel* cancel);
  void cancel_all();
  /// Whether cancel_all() was called (shutdown_timeout passed): a stop starts nothing new.
  [[nodiscard]] bool cancelled() const noexcept { return cancelled_.load(); }

  static constexpr int kSlots = 5;

  /// A part of the replicator gave up (reconnect.max_attempts): stop, and exit with `code`.
  void give_up(int code) {
    exit_code_ = code;
    request_stop();
  }
  [[nodiscard]] int give_up_code() const noexcept { return exit_code_.load(); }

  /// Metrics and the state /status reports: every part of `run` writes here.
  Telemetry telemetry;

 private:
  std::atomic<int> exit_code_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> cancelled_{false};
  pg_cancel* cancels_[kSlots] = {};
};

/// One configured table as the worker replicates it.
struct StreamTable {
  std::int32_t table_id = 0;
  const TableConfig* config = nullptr;
  std::vector<std::string> source_key;                       // source key columns
  std::vector<std::pair<std::string, std::string>> mapping;  // replicated columns, source -> target
  apply::TargetShape shape;                                  // target columns and key
  std::string source_name;                                   // quoted, as in captured_table/table_state
  std::string label;                                         // for logs: public.users -> public.chat_users
  capture::CaptureSpec capture;                              // how the trigger journals it (image, key, filter)
  /// Set when the target table cannot take the rows at start (a missing table or column, ...):
  /// `run` starts with this table stopped, for this reason.
  std::string broken;
};

struct InspectedTable;
class Session;

/// Prepares `name` on `target` as the upsert `render` renders: comparing columns natively, or by
/// their text when a column type has no equality operator (SQLSTATE 42883: json, point, ...). The
/// applier, the sweep and `errors retry` all prepare their upserts this way.
[[nodiscard]] Status prepare_upsert(Session& target, const std::string& name,
                                    const std::function<std::string(apply::Compare)>& render);

/// The worker's view of one inspected table whose capture is registered under `table_id`.
[[nodiscard]] StreamTable stream_table_for(const InspectedTable& table, std::int32_t table_id);

/// Connects to both databases, checks that setup ran for this configuration and builds the
/// worker's view of every configured table. On failure prints what is wrong (on stderr) and
/// returns the exit code (2 for configuration, 1 for a database that cannot be reached); 0 on success.
[[nodiscard]] int load_stream_tables(const Config& config, std::vector<StreamTable>& out);

/// Runs the worker until `control.request_stop()`; returns the process exit code (0 after a clean
/// stop). Errors it can ride out (a dropped connection, a rejected batch) are logged and retried
/// with backoff; only a configuration that cannot work ends it (exit 2).
int run_stream(const Config& config, std::vector<StreamTable> tables, Control& control);

}  // namespace pgferry
