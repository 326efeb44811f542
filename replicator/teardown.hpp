#pragma once
// `pgferry teardown`: removes every capture trigger and the pgferry schema (journal included)
// from the source, leaving application tables and their data untouched.

#include "config.hpp"

namespace pgferry {

/// Options of `pgferry teardown`.
struct TeardownOptions {
  bool yes = false;             // confirmed on the command line
  bool include_target = false;  // also drop schema pgferry (sync_errors, table_state) on the target
};

/// Runs teardown. Without `yes` it asks on a terminal, and refuses (exit 2) without one.
[[nodiscard]] int run_teardown(const Config& config, const TeardownOptions& options);

}  // namespace pgferry
