#pragma once
// What to do about a PostgreSQL error, decided from its SQLSTATE (PostgreSQL docs, Appendix A).

#include <cstdint>
#include <string_view>

namespace pgferry {

/// The remedy for a failed statement.
enum class Remedy : std::uint8_t {
  Reconnect,         // The connection is gone or the server is going away: reconnect with backoff.
  RetryTransaction,  // A transient conflict (serialization, deadlock, lock timeout): retry with backoff.
  QuarantineRow,     // The data itself is rejected (22xxx, 23xxx): isolate the row, keep the stream going.
  StopTable,         // The table's schema or rights are wrong (42xxx): stop that table, tell an operator.
  Fatal,             // Anything else: a bug or an unexpected state; fail loudly.
};

/// Maps a five-character SQLSTATE to its remedy. An empty SQLSTATE (libpq lost the
/// connection before the server answered) means Reconnect.
[[nodiscard]] Remedy remedy_for(std::string_view sqlstate) noexcept;

/// A short lower-case name for a remedy, for logs and sync_errors.error_class.
[[nodiscard]] std::string_view remedy_name(Remedy r) noexcept;

}  // namespace pgferry
