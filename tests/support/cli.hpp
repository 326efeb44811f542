#pragma once
// Runs the real pgferry binary (built by CMake, path compiled in as PGFERRY_BINARY) the way a
// user would, and captures what it printed and its exit code.

#include <map>
#include <string>
#include <vector>

namespace pgferry::test {

/// What one run of the binary did.
struct CliResult {
  int exit_code = -1;  // exit status, or 128 + signal number when killed by a signal
  std::string out;     // everything written to stdout
  std::string err;     // everything written to stderr
  [[nodiscard]] std::string all() const { return out + err; }
};

/// Runs `argv[0] argv[1..]` (argv[0] looked up in PATH when it has no slash) with the current
/// environment plus `env` (a value of "" unsets that variable), standard input from /dev/null,
/// killed with SIGKILL after `timeout_s` seconds.
CliResult run_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                      int timeout_s = 120);

/// Runs `pgferry args...` with the current environment plus `env` (a value of "" unsets that
/// variable), standard input from /dev/null, killed after `timeout_s` seconds.
CliResult run_pgferry(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
                      int timeout_s = 120);

/// A fresh temp directory removed on destruction, for config files and the like.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  /// Writes `contents` to path()/name and returns the full path.
  std::string write(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

}  // namespace pgferry::test
