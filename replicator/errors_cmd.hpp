#pragma once
// `pgferry errors list|retry|resolve`: what the replicator could not apply (pgferry.sync_errors on
// the target), and the operator's ways out. An error row is never deleted by pgferry.

#include <cstdint>
#include <string>
#include <vector>

#include "config.hpp"

namespace pgferry {

/// Options of `pgferry errors ...`.
struct ErrorsOptions {
  enum class Action : unsigned char { List, Retry, Resolve };
  Action action = Action::List;
  std::string table;              // list: --table (a configured source table)
  bool open = false;              // list: --open, only unresolved errors
  bool json = false;              // list: --json
  std::vector<std::int64_t> ids;  // retry / resolve: error ids
  bool all = false;               // retry: --all open errors
  std::string note;               // resolve: --note (required)
};

/// Runs one errors command. Exit code 0 on success, 1 when a retry still fails or a database
/// cannot be reached, 2 for bad usage (unknown id, missing --note, ...).
[[nodiscard]] int run_errors(const Config& config, const ErrorsOptions& options);

}  // namespace pgferry
