#pragma once
// The health monitor of `run`: every health.check_interval it measures what only the databases
// know — the journal backlog, its oldest change's age on the source's clock, its size, the
// source's NOTIFY queue, open sync errors per table — and hands it to Telemetry. It runs on its
// own thread with its own two connections, so a long batch never delays a measurement (the lag
// an operator sees is the lag there is) and a slow measurement never delays a batch.

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "config.hpp"
#include "result.hpp"
#include "status.hpp"

namespace pgferry {

class Telemetry;
class Session;

/// The source journal, measured: per captured table (quoted name, as captured_table has it) the
/// rows waiting and the age of the oldest on the source's clock; the totals; the journal's size
/// and the NOTIFY queue's usage. `run`'s monitor and `pgferry status` measure it the same way.
struct JournalMeasure {
  struct Table {
    std::int64_t rows = 0;
    double oldest_age = 0;
  };
  std::map<std::string, Table> by_table;
  std::int64_t rows = 0;
  double oldest_age = 0;
  std::int64_t bytes = 0;
  double notify_queue_usage = 0;
};
[[nodiscard]] Result<JournalMeasure> measure_journal(Session& source);

class HealthMonitor {
 public:
  HealthMonitor(const Config& config, Telemetry& telemetry);
  ~HealthMonitor();
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  void start();
  /// Stops and joins the thread (a measurement in flight finishes first).
  void stop();

 private:
  void run();
  void measure();

  const Config& config_;
  Telemetry& telemetry_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  status::BacklogTrend trend_;
  struct Connections;
  std::unique_ptr<Connections> conns_;
};

}  // namespace pgferry
