#pragma once
// A throwaway PostgreSQL cluster for integration tests: initdb + pg_ctl into a fresh temp dir,
// listening on a free loopback port, torn down when the object dies (even when a test fails),
// and by a watchdog process if the test binary itself is killed.
// Run as root, the server binaries run as the `postgres` user (PostgreSQL refuses root).
// Binaries come from $PGFERRY_PG_BINDIR, else `pg_config --bindir`, else /usr/lib/postgresql/15/bin.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgferry::test {

/// Options for a throwaway cluster.
struct ClusterOptions {
  /// Extra postgresql.conf settings, e.g. {"wal_level", "logical"}.
  std::map<std::string, std::string> settings;
  /// Name used in the temp dir and log lines ("source", "target").
  std::string name = "pg";
};

/// One running PostgreSQL server owned by the test process.
class PgCluster {
 public:
  /// Starts a new cluster; throws std::runtime_error (with the server log tail) on failure.
  static std::unique_ptr<PgCluster> start(const ClusterOptions& options = {});
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  /// TCP port on 127.0.0.1.
  [[nodiscard]] int port() const;
  /// libpq conninfo for a database on this cluster as `user` (superuser `postgres` by default).
  [[nodiscard]] std::string conninfo(const std::string& dbname, const std::string& user = "postgres") const;
  /// Creates a database (owned by `owner`); returns its name.
  std::string create_database(const std::string& dbname, const std::string& owner = "postgres");
  /// Runs SQL as superuser in `dbname`; throws std::runtime_error with the server's message.
  void exec(const std::string& dbname, const std::string& sql);

  /// Stops the server (fast shutdown) without removing the data dir; start_again() restarts it
  /// on the same port. For tests that take the database away.
  void stop();
  /// Stops the server as a crash would (immediate shutdown: no checkpoint, WAL not yet written
  /// is lost); start_again() recovers it.
  void crash();
  void start_again();
  /// Whether the server is running.
  [[nodiscard]] bool running() const;
  /// The data directory and the server log file.
  [[nodiscard]] const std::string& data_dir() const;
  [[nodiscard]] std::string log_tail(int lines = 40) const;

 private:
  PgCluster() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Absolute path of the PostgreSQL server binaries directory.
[[nodiscard]] std::string pg_bindir();

}  // namespace pgferry::test
