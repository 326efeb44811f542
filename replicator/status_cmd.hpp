#pragma once
// `pgferry status`: whether replication is healthy. Asks the running `pgferry run` for its
// /status (on http.listen); when none answers, reads what it can from both databases instead
// (journal backlog and age, table phases, open sync errors) and reports not ready, since nothing
// replicates without a running pgferry. For operators, scripts and container health checks.

#include <chrono>

#include "config.hpp"

namespace pgferry {

/// Options of `pgferry status`.
struct StatusOptions {
  bool json = false;  // --json: print the snapshot as /status serves it
  /// --timeout: how long to wait for the running pgferry's answer.
  std::chrono::milliseconds timeout{std::chrono::seconds(2)};
};

/// Prints the status. Exit code 0 when ready, 1 when not ready (or nothing could be read),
/// 2 when http.listen cannot be used as an address.
[[nodiscard]] int run_status(const Config& config, const StatusOptions& options);

}  // namespace pgferry
