#pragma once
// pgferry.yaml: the Config it describes, and its parser and validator.
// Every key may be overridden by a PGFERRY_* environment variable (PGFERRY_SWEEP_INTERVAL for
// sweep.interval), and ${NAME} in any string value is replaced by that environment variable.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconnect.hpp"
#include "result.hpp"
#include "sql.hpp"

namespace pgferry {

/// The environment a configuration is read in (a copy of environ, or a test's own map).
using Env = std::map<std::string, std::string, std::less<>>;

/// The process's environment variables.
[[nodiscard]] Env process_environment();

/// One source column and the target column it is written to.
struct ColumnMapping {
  std::string source;
  std::string target;
  friend bool operator==(const ColumnMapping&, const ColumnMapping&) = default;
};

/// One replicated table, as configured.
struct TableConfig {
  sql::QualifiedName source;
  sql::QualifiedName target;
  /// Empty when `columns` was omitted: then every source column goes to the same-named column.
  std::vector<ColumnMapping> columns;
  /// Optional row filter: a SQL boolean expression over the source table's columns.
  std::string where;
  /// Optional source column that the sweep's lookback reconcile reads.
  std::optional<std::string> updated_at;
  /// Whether a TRUNCATE on the source is replicated (true by default).
  bool truncate = true;
  /// Whether INSERTs may be captured per statement (`insert_capture: statement`, the default),
  /// where the table allows it, or must be per row (`row`: a table about to become a partition).
  bool statement_inserts = true;
  /// Where this table is configured, for messages: "pgferry.yaml:12 tables[1]".
  std::string origin;

  [[nodiscard]] bool all_columns() const noexcept { return columns.empty(); }
};

struct SweepConfig {
  std::chrono::milliseconds interval{std::chrono::seconds(60)};
  double lookback_multiplier = 3.0;
};

/// How much the reader takes from the journal at once. A batch holds whole source transactions;
/// only a transaction larger than both bounds is split (and then applied in several target
/// transactions, which is logged).
struct BatchConfig {
  std::int64_t max_rows = 10000;
  std::int64_t max_bytes = std::int64_t{64} << 20;
};

struct ApplyConfig {
  /// SET session_replication_role = replica on the target: foreign keys and user triggers are
  /// not fired for replicated rows (needs superuser or GRANT SET ON PARAMETER).
  bool replica_role = false;
  /// The target session's synchronous_commit. `off` (the default, as native logical replication's
  /// apply worker): a batch is visible on the target without waiting for its WAL flush, and its
  /// journal rows are acknowledged only once the target reports its WAL flushed past the batch's
  /// commit. Any other value: the commit waits for that durability and the ack follows at once.
  std::string synchronous_commit = "off";
};

/// Upkeep of the source journal. Acknowledged rows are deleted, and autovacuum (whose naptime is
/// a minute) lets the dead rows pile up meanwhile: at 14k rows/s the journal grew to 280 MB
/// holding under 1 MB of live rows. The replicator vacuums it itself after this many acks.
struct JournalConfig {
  std::int64_t vacuum_after_rows = 50000;  // 0: leave it to autovacuum
};

/// How the replicator reconnects after a connection drops (each connection on its own): the
/// reconnect controller's policy (reconnect.hpp), read from `reconnect:`.
using ReconnectConfig = ReconnectPolicy;

/// Noticing dead connections: TCP keepalives and tcp_user_timeout on every connection pgferry
/// opens (defaults under the user's conninfo, which may override them), and a heartbeat query on
/// the otherwise silent LISTEN connection.
struct ConnectionConfig {
  std::chrono::milliseconds keepalives_idle{std::chrono::seconds(10)};
  std::chrono::milliseconds tcp_user_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(10)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
};

/// The mass-delete guard: a batch, sweep or repair that would delete more than
/// `max_delete_fraction` of a target table holding at least `min_rows` rows stops that table
/// instead (until `pgferry errors retry` confirms it). 1 disables the guard.
struct GuardConfig {
  double max_delete_fraction = 0.5;
  std::int64_t min_rows = 1000;
};

/// When writers ring the doorbell.
struct DoorbellConfig {
  /// Source transactions read per second (a moving average over ~100 ms) above which `run`
  /// turns the doorbell off while it applies (writers then skip NOTIFY); 0: off whenever it
  /// applies anything.
  std::int64_t off_above = 1000;
  /// While the doorbell is off, a read of the journal starts at most this often: the batches of
  /// busy writers carry this long's worth of transactions instead of one or two each.
  std::chrono::milliseconds busy_interval{2};
};

/// `verify` inside `run`: every `every` (0: never), compare source and target and log what differs.
struct VerifyConfig {
  std::chrono::milliseconds every{0};
};

struct HttpConfig {
  /// host:port of the one HTTP port (/metrics, /healthz, /readyz, /status); port 0 picks a free
  /// port (logged at start).
  std::string listen = "127.0.0.1:9187";
};

/// What `/readyz` and `pgferry status` call healthy, and how often `run` measures the journal.
struct HealthConfig {
  /// Replication lag (age of the oldest unapplied change, source clock) above which pgferry is
  /// not ready.
  std::chrono::milliseconds max_lag{std::chrono::seconds(30)};
  /// How often `run` measures the journal backlog, its age and size, open sync errors and the
  /// notification queue (one small query on each database).
  std::chrono::milliseconds check_interval{std::chrono::seconds(5)};
};

struct LogConfig {
  std::string level = "info";   // trace, debug, info, warn, error, off
  std::string format = "auto";  // auto (text on a terminal, else json), text, json
};

/// The whole configuration, validated: every field holds a usable value.
struct Config {
  std::string source;  // libpq conninfo or URI of the source database
  std::string target;  // libpq conninfo or URI of the target database
  std::vector<TableConfig> tables;
  SweepConfig sweep;
  BatchConfig batch;
  ApplyConfig apply;
  JournalConfig journal;
  ReconnectConfig reconnect;
  ConnectionConfig connection;
  GuardConfig guard;
  VerifyConfig verify;
  DoorbellConfig doorbell;
  /// The idle safety net: how often the replicator reads the journal when no doorbell rang.
  std::chrono::milliseconds poll_interval{std::chrono::seconds(1)};
  /// How long a graceful shutdown waits for the batch in flight before rolling it back.
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(30)};
  HttpConfig http;
  HealthConfig health;
  LogConfig log;
  /// Where the configuration came from: a file path, or "environment".
  std::string origin;
  /// Things worth telling the user that do not stop pgferry (an unknown PGFERRY_* variable).
  std::vector<std::string> warnings;

  /// The configured table with this source name, or nullptr.
  [[nodiscard]] const TableConfig* find_table(const sql::QualifiedName& source_name) const;
};

/// Parses and validates configuration text. `origin` names it in messages (usually the path).
[[nodiscard]] Result<Config> parse_config(std::string_view yaml_text, std::string_view origin, const Env& env);

/// Reads `path` (or, when empty, PGFERRY_CONFIG; or, when that is unset too, the environment
/// alone) and parses it.
[[nodiscard]] Result<Config> load_config(const std::string& path, const Env& env);

/// Parses a duration such as 250ms, 60s, 1m30s, 2h or 1d. A bare number is an error: say the unit.
[[nodiscard]] Result<std::chrono::milliseconds> parse_duration(std::string_view text);

/// Parses a byte size such as 64MB, 512kB, 1GB or a plain number of bytes.
[[nodiscard]] Result<std::int64_t> parse_bytes(std::string_view text);

/// Formats a duration the way parse_duration reads it back (1m30s, 250ms).
[[nodiscard]] std::string format_duration(std::chrono::milliseconds d);

/// Replaces ${NAME} and ${NAME:-default} with environment values; $$ is a literal $.
/// Fails, naming the variable, when NAME is unset and has no default.
[[nodiscard]] Result<std::string> substitute_env(std::string_view text, const Env& env);

/// Checks a row filter for what can be seen without a database: balanced parentheses and
/// quotes, and no statement separator. The database parses it for real in `check` and `setup`.
[[nodiscard]] Status check_filter_syntax(std::string_view filter);

}  // namespace pgferry
