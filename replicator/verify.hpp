#pragma once
// `pgferry verify`: compares every configured table (filtered, mapped) on source and target and,
// with --repair, fixes what differs. Also run on a schedule inside `pgferry run` (verify.every).

#include <optional>
#include <string>

#include <memory>
#include <vector>

#include "config.hpp"
#include "stream.hpp"

namespace pgferry {

/// Options of `pgferry verify`.
struct VerifyOptions {
  std::optional<std::string> table;  // --table: one configured source table, else all
  bool repair = false;               // --repair: upsert missing/different rows, delete extra ones
  bool json = false;                 // --json: machine-readable report on stdout
  bool allow_mass_delete = false;    // --allow-mass-delete: let --repair exceed guard.max_delete_fraction
};

/// Runs verify; prints the report on stdout, errors on stderr. Exit code: 0 when source and target
/// agree (or --repair fixed every difference), 1 when differences remain or a database failed,
/// 2 for bad usage or configuration.
[[nodiscard]] int run_verify(const Config& config, const VerifyOptions& options);

/// verify.every inside `pgferry run`: a thread that verifies every table (report only, into the
/// log) at that interval. Does nothing when verify.every is 0.
class VerifyScheduler {
 public:
  VerifyScheduler(const Config& config, std::vector<StreamTable> tables, Control& control);
  ~VerifyScheduler();
  VerifyScheduler(const VerifyScheduler&) = delete;
  VerifyScheduler& operator=(const VerifyScheduler&) = delete;
  void start();
  /// Stops the thread (a verify in flight is abandoned) and joins it.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgferry
