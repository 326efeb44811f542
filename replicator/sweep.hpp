#pragma once
// The sweep: every sweep.interval, wakes the worker (so the journal is drained even when a
// doorbell was lost), then re-reads, for each table with `updated_at` configured, the source rows
// changed within lookback_multiplier x interval before the start of the last successful sweep,
// and repairs those that differ on the target. It catches writes the triggers never saw
// (session_replication_role = replica, disabled triggers, rows written before setup).

#include <memory>
#include <vector>

#include "config.hpp"
#include "stream.hpp"

namespace pgferry {

/// Runs sweeps on its own thread with its own source and target connections.
class Sweeper {
 public:
  Sweeper(const Config& config, std::vector<StreamTable> tables, Control& control);
  ~Sweeper();
  Sweeper(const Sweeper&) = delete;
  Sweeper& operator=(const Sweeper&) = delete;
  /// Starts the sweep thread (first sweep one interval after start).
  void start();
  /// Stops the thread (a sweep in flight is cancelled or finishes its chunk) and joins it.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgferry
