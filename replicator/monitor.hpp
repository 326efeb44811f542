#pragma once
// The health monitor of `run`: every health.check_interval it measures what only the databases
// know — the journal backlog, its oldest change's age on the source's clock, its size, the
// source's NOTIFY queue, open sync errors per table — and hands it to Telemetry. It runs on its
// own thread with its own two connections, so a long batch never delays a measurement (the lag
// an operator sees is the lag there is) and a slow measurement never delays a batch.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "config.hpp"
#include "status.hpp"

namespace pgferry {

class Telemetry;

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
