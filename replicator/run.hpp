#pragma once
// `pgferry run`: the long-running replicator (event loop + ferry worker), and `pgferry snapshot`.

#include <string>

#include "config.hpp"

namespace pgferry {

/// Replicates until SIGTERM/SIGINT. Returns the process exit code.
[[nodiscard]] int run_replicator(const Config& config);

/// Marks `table` (a configured source table) for a fresh initial copy and wakes a running
/// replicator. Returns the process exit code.
[[nodiscard]] int run_snapshot(const Config& config, const std::string& table);

}  // namespace pgferry
