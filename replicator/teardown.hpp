#pragma once
// `pgferry teardown`: removes every capture trigger and the pgferry schema (journal included)
// from the source, leaving application tables and their data untouched.

#include <chrono>

#include "config.hpp"

namespace pgferry {

/// Options of `pgferry teardown`.
struct TeardownOptions {
  bool yes = false;             // confirmed on the command line
  bool include_target = false;  // also drop schema pgferry (sync_errors, table_state) on the target
  /// How long to wait for each lock; DROP TRIGGER queued behind a long transaction would block
  /// every writer of that table while it waits.
  std::chrono::milliseconds lock_timeout{10'000};
};

/// Runs teardown. Without `yes` it asks on a terminal, and refuses (exit 2) without one.
[[nodiscard]] int run_teardown(const Config& config, const TeardownOptions& options);

}  // namespace pgferry
