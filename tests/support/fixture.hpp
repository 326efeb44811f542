#pragma once
// Shared fixture for integration tests that need a source and a target server: one pair of
// throwaway clusters per test binary (started on first use, torn down at exit), and a fresh
// pair of databases per test so tests never see each other's objects.

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "support/cli.hpp"
#include "support/pg_client.hpp"
#include "support/pg_cluster.hpp"

namespace pgferry::test {

/// Sets an environment variable for the life of the object (inherited by pgferry processes).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

/// The source and target clusters of this test binary.
struct ClusterPair {
  std::unique_ptr<PgCluster> source;
  std::unique_ptr<PgCluster> target;
};

/// Starts the pair on first call; later calls return the same pair.
ClusterPair& cluster_pair();

/// Base class for tests that replicate: creates databases named after the test on both
/// clusters, and a temp dir for config files.
class SourceTargetTest : public ::testing::Test {
 protected:
  void SetUp() override;

  /// Conninfo of this test's source/target database (superuser unless `user` is given).
  [[nodiscard]] std::string source_conninfo(const std::string& user = "postgres") const;
  [[nodiscard]] std::string target_conninfo(const std::string& user = "postgres") const;
  /// New superuser connections to this test's databases.
  [[nodiscard]] PgClient source() const { return PgClient(source_conninfo()); }
  [[nodiscard]] PgClient target() const { return PgClient(target_conninfo()); }

  /// Writes pgferry.yaml with this test's source and target and the given `tables:` block
  /// (YAML list items, e.g. "  - name: public.users\n"); returns its path.
  std::string write_config(const std::string& tables_yaml, const std::string& extra_yaml = "") const;
  /// Runs the same SQL on the source and the target database (typically CREATE TABLE).
  void on_both(const std::string& sql) const;

  /// `pgferry <command> -c <config>` plus extra arguments.
  CliResult pgferry(const std::string& command, const std::string& config, std::vector<std::string> extra = {}) const;

  std::string db_;  // database name, the same on both clusters
  TempDir dir_;
};

}  // namespace pgferry::test
