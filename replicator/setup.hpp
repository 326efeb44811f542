#pragma once
// `pgferry setup`: installs or upgrades pgferry's schema on both databases and the capture
// triggers on every configured source table; removes capture from tables no longer configured.

#include <chrono>

#include "capture_sql.hpp"
#include "catalog.hpp"
#include "config.hpp"

namespace pgferry {

/// Options of `pgferry setup`.
struct SetupOptions {
  /// How long to wait for a table lock (creating a trigger briefly blocks writes to the table).
  std::chrono::milliseconds lock_timeout{std::chrono::seconds(10)};
};

/// Runs setup; prints what it does on stdout and errors on stderr. Returns the exit code.
[[nodiscard]] int run_setup(const Config& config, const SetupOptions& options);

/// What capture for an inspected table must look like, given its registry id.
[[nodiscard]] capture::CaptureSpec capture_spec_for(const InspectedTable& table, std::int32_t table_id);

/// Prints an error for a person on stderr.
void print_error(const Error& e);

/// Connects to both databases and inspects the configuration; prints problems. Returns the
/// exit code to stop with, or 0 to go on (then `out` holds the inspected tables).
struct Connected {
  std::optional<Session> source;
  std::optional<Session> target;
  std::vector<InspectedTable> tables;
};
/// With `tolerate_target_problems`, tables whose only problems are the target's (see
/// ResolvedTable::target_only) do not count: they are left in `out` for the caller (`run` starts
/// them stopped).
[[nodiscard]] int connect_and_inspect(const Config& config, Connected& out, bool print_problems,
                                      bool tolerate_target_problems = false);

/// The capture state of one table on the source: whether it is installed and matches `spec`.
struct CaptureState {
  bool registered = false;    // a pgferry.captured_table row exists
  std::int32_t table_id = 0;  // its id when registered
  bool up_to_date = false;    // fingerprint matches and every trigger is present and enabled
};
[[nodiscard]] Result<CaptureState> capture_state(Session& source, const InspectedTable& table);

}  // namespace pgferry
