#pragma once
// `pgferry check`: is everything ready to replicate? Validates the configuration against both
// databases and reports, per table, what is right and what is not.

#include "config.hpp"

namespace pgferry {

/// Runs check and prints its report. Exit code: 0 ready; 2 the configuration does not match
/// the databases; 1 anything else not ready (connection, privileges, capture not installed).
[[nodiscard]] int run_check(const Config& config);

}  // namespace pgferry
