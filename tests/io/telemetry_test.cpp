// Telemetry's derived values, in memory (no server): what /status and the gauges say must follow
// the tables' phases at once, not at the health monitor's next measurement.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "telemetry.hpp"

namespace pgferry {
namespace {

Telemetry::Measured ages(double users, double orders) {
  Telemetry::Measured m;
  m.backlog_by_table =
      std::map<std::string, Telemetry::TableBacklog>{{"public.users", {3, users}}, {"public.orders", {1, orders}}};
  return m;
}

class TelemetryLag : public ::testing::Test {
 protected:
  TelemetryLag() {
    t.set_tables({{"public.users", "public.users"}, {"public.orders", "public.orders"}});
    t.table_phase("public.users", "streaming");
    t.table_phase("public.orders", "streaming");
  }
  double lag() const { return t.replication_lag.Value(); }
  std::optional<double> status_lag() const { return t.snapshot(30, std::chrono::hours(1)).lag_seconds; }
  Telemetry t;
};

TEST_F(TelemetryLag, IsTheOldestRowOfTheStreamingTables) {
  EXPECT_FALSE(status_lag().has_value());  // nothing measured yet
  t.measured(ages(2.5, 7.0), {});
  EXPECT_DOUBLE_EQ(lag(), 7.0);
  EXPECT_EQ(status_lag(), 7.0);
}

TEST_F(TelemetryLag, ATableThatStopsLeavesTheLagAtOnceAndRejoinsItWhenResumed) {
  t.measured(ages(2.5, 7.0), {});
  t.table_phase("public.orders", "stopped", "column missing");
  // The measurement predates the stop; the lag must not wait for the next one.
  EXPECT_DOUBLE_EQ(lag(), 2.5);
  EXPECT_EQ(status_lag(), 2.5);
  EXPECT_DOUBLE_EQ(t.table("public.orders").lag->Value(), 7.0);  // its own lag still shows
  t.table_phase("public.orders", "streaming");
  EXPECT_DOUBLE_EQ(lag(), 7.0);
}

TEST_F(TelemetryLag, ACopyingTableDoesNotCountAndNothingMeasuredStaysUnknown) {
  t.table_phase("public.users", "snapshotting");
  EXPECT_FALSE(status_lag().has_value());  // a phase change alone measures nothing
  t.measured(ages(9.0, 1.0), {});
  EXPECT_DOUBLE_EQ(lag(), 1.0);
}

}  // namespace
}  // namespace pgferry
