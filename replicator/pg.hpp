#pragma once
// libpq ownership types, and a small blocking session for the one-shot commands (setup, check,
// teardown). The replicator's event loop uses nonblocking connections instead (connection.*).

#include <fmt/format.h>
#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "result.hpp"

namespace pgferry {

struct PgConnClose {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct PgResultClear {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnClose>;
using PgResultPtr = std::unique_ptr<PGresult, PgResultClear>;

/// Keywords and values every connection gets under its conninfo (see connection_defaults); set
/// once at start-up, before any connection is opened.
void set_connection_defaults(std::vector<std::pair<std::string, std::string>> defaults);

/// Keyword/value arrays for PQconnectdbParams / PQconnectStartParams with expand_dbname = 1: the
/// connection defaults, fallback_application_name, then dbname = conninfo (which overrides them).
class ConnectParams {
 public:
  ConnectParams(const std::string& conninfo, std::string_view application_name);
  [[nodiscard]] const char* const* keys() const noexcept { return keys_.data(); }
  [[nodiscard]] const char* const* values() const noexcept { return values_.data(); }

 private:
  std::vector<std::pair<std::string, std::string>> owned_;
  std::vector<const char*> keys_;
  std::vector<const char*> values_;
};

/// A text parameter for a query; nullopt is SQL NULL.
using Param = std::optional<std::string>;

/// One statement of a pipeline: SQL with text parameters $1..$n, or a prepared statement's name.
struct Statement {
  enum Kind {
    kText,   ///< parsed and planned every time it runs
    kNamed,  ///< `text` names a statement prepared with Session::prepare
    /// Prepared by the session the first time it runs, then run by name: parsed once, and
    /// planned once the server finds its generic plan as good as one made for the values (after
    /// five runs), instead of both on every run. For the statements a stream runs once or more
    /// per batch (~0.1 ms of server CPU each), and only those whose best plan does not depend on
    /// the values. A session holds at most Session::kMaxReused of them; past that a new one is
    /// parsed and planned every time, like kText.
    kReused,
  };
  std::string text;
  std::vector<Param> params;
  Kind kind = kText;
};

/// One blocking connection, labelled ("source", "target") for messages.
class Session {
 public:
  /// Connects; the error names the database by label and shows the conninfo without password.
  [[nodiscard]] static Result<Session> connect(const std::string& conninfo, std::string label,
                                               std::string_view application_name = "pgferry");

  /// Runs one statement (or several, without parameters) and returns its last result.
  [[nodiscard]] Result<PgResultPtr> exec(std::string_view sql);
  /// Runs one statement with text parameters $1..$n.
  [[nodiscard]] Result<PgResultPtr> query(std::string_view sql, const std::vector<Param>& params);
  /// Prepares a named statement with text parameters.
  [[nodiscard]] Status prepare(const std::string& name, std::string_view sql);
  /// Runs a prepared statement with text parameters.
  [[nodiscard]] Result<PgResultPtr> exec_prepared(const std::string& name, const std::vector<Param>& params);
  /// Runs one statement of any kind, as send_pipeline would send it.
  [[nodiscard]] Result<PgResultPtr> execute(const Statement& statement);
  static constexpr std::size_t kMaxReused = 64;
  /// Whether the connection is still usable (false once the server or the network dropped it,
  /// or a pipeline's results could not be read to the end).
  [[nodiscard]] bool alive() const noexcept { return !broken_ && PQstatus(conn_.get()) == CONNECTION_OK; }

  /// Sends `statements` in libpq's pipeline mode, each one statement of the extended protocol,
  /// then a sync, and returns without waiting for a result: the server works through them while
  /// the caller does something else. A kReused statement new to the session is prepared first,
  /// before the pipeline (one round trip, once). Without an explicit BEGIN they form one implicit
  /// transaction. Nothing else may run on the session until finish_pipeline.
  [[nodiscard]] Status send_pipeline(const std::vector<Statement>& statements);
  /// Waits for the results of the statements send_pipeline sent and leaves pipeline mode. On
  /// failure `failed` is the index of the statement that failed (the server skipped the ones
  /// after it, up to the sync); a pipeline whose results cannot be read leaves the session dead.
  /// `rows`, if given, gets the result of the last statement that returned rows.
  [[nodiscard]] Status finish_pipeline(std::size_t& failed, PgResultPtr* rows = nullptr);
  /// Runs statements, discarding results.
  [[nodiscard]] Status run(std::string_view sql);
  /// The single value of a one-row, one-column query ("" for NULL).
  [[nodiscard]] Result<std::string> scalar(std::string_view sql, const std::vector<Param>& params = {});

  /// SQLSTATE of the last failed statement, "" if it succeeded or no server answered.
  [[nodiscard]] const std::string& last_sqlstate() const noexcept { return last_sqlstate_; }
  [[nodiscard]] const std::string& label() const noexcept { return *label_; }
  [[nodiscard]] PGconn* raw() const noexcept { return conn_.get(); }

 private:
  Session(PgConnPtr conn, std::string label, std::string conninfo);
  Result<PgResultPtr> check(PgResultPtr res, std::string_view sql);
  /// A pipeline that cannot be sent or read to the end: the session is dead; the error says what.
  Error lost_pipeline(std::string_view what);
  /// The prepared statement `statement` runs as: a kNamed one's name; for a kReused one the name
  /// it is prepared under on this session, prepared now if it is new (nullopt once the session
  /// holds kMaxReused); nullopt for kText.
  Result<std::optional<std::string>> prepared_name(const Statement& statement);

  PgConnPtr conn_;
  // On the heap so the notice processor's pointer to it survives moves of the Session.
  std::unique_ptr<std::string> label_;
  std::string conninfo_;  // kept only to scrub the password from messages
  std::string last_sqlstate_;
  bool broken_ = false;                                  // a pipeline could not be sent or read to the end
  std::unordered_map<std::string, std::string> reused_;  // SQL -> the name it is prepared under
};

/// A PostgreSQL array literal of values that need no quoting (numbers, xid8): "{1,2,3}".
template <typename Range>
[[nodiscard]] std::string pg_array(const Range& values) {
  return fmt::format("{{{}}}", fmt::join(values, ","));
}

/// The value at (row, col) as a string ("" for NULL).
[[nodiscard]] inline std::string value(const PGresult* r, int row, int col) {
  return PQgetisnull(r, row, col) != 0 ? std::string() : std::string(PQgetvalue(r, row, col), PQgetlength(r, row, col));
}

/// Whether the value at (row, col) is PostgreSQL's boolean true.
[[nodiscard]] inline bool is_true(const PGresult* r, int row, int col) {
  return PQgetisnull(r, row, col) == 0 && PQgetvalue(r, row, col)[0] == 't';
}

}  // namespace pgferry
