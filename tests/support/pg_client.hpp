#pragma once
// A small blocking libpq client for test code: run SQL, read results, receive notifications.
// Failures throw std::runtime_error carrying the server's message and SQLSTATE, so a test
// fails loudly at the statement that broke.

#include <optional>
#include <string>
#include <vector>

struct pg_conn;

namespace pgferry::test {

using Row = std::vector<std::optional<std::string>>;  // NULL is std::nullopt

/// One connection, closed on destruction.
class PgClient {
 public:
  explicit PgClient(const std::string& conninfo);
  ~PgClient();
  PgClient(PgClient&& other) noexcept;
  PgClient& operator=(PgClient&& other) noexcept;
  PgClient(const PgClient&) = delete;
  PgClient& operator=(const PgClient&) = delete;

  /// Runs one or more statements; throws on error.
  void exec(const std::string& sql);
  /// Runs a query with text parameters $1..$n; returns all rows in text format.
  std::vector<Row> query(const std::string& sql, const std::vector<std::optional<std::string>>& params = {});
  /// Runs a query that returns exactly one row with one column; throws otherwise. NULL -> "".
  std::string scalar(const std::string& sql, const std::vector<std::optional<std::string>>& params = {});
  /// Like exec, but returns the SQLSTATE of the error instead of throwing ("" on success).
  std::string try_exec(const std::string& sql);
  /// Collects notifications that have arrived, waiting up to `wait_ms` for the first one.
  /// Returns their channel names (one entry per notification).
  std::vector<std::string> notifications(int wait_ms = 0);
  /// The server PID of this connection's backend.
  int backend_pid();

  pg_conn* raw() { return conn_; }

 private:
  pg_conn* conn_ = nullptr;
};

}  // namespace pgferry::test
