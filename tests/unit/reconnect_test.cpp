// The reconnect controller: backoff growth and cap, reset only after a healthy period, one log
// line per state change, reminders, and giving up after max_attempts.
#include "reconnect.hpp"

#include <gtest/gtest.h>

namespace pgferry {
namespace {

using std::chrono::milliseconds;
using Clock = Reconnect::Clock;

ReconnectPolicy policy(std::int64_t max_attempts = 0) {
  return ReconnectPolicy{milliseconds(100), milliseconds(1000), max_attempts, milliseconds(10'000)};
}

TEST(Reconnect, TheFirstFailureIsAStateChangeAndRetriesAreNot) {
  Reconnect r(policy());
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  const auto first = r.failed(t0, 0.999);
  EXPECT_TRUE(first.state_change);
  EXPECT_EQ(first.attempt, 1U);
  EXPECT_FALSE(r.is_up());
  for (std::uint32_t i = 2; i <= 25; ++i) {
    const auto d = r.failed(t0 + milliseconds(i), 0.5);
    EXPECT_FALSE(d.state_change) << i;
    EXPECT_EQ(d.attempt, i);
    EXPECT_EQ(d.reminder, i % Reconnect::kReminderEvery == 0) << i;
    EXPECT_FALSE(d.give_up);
  }
}

TEST(Reconnect, DelaysGrowWithFullJitterUpToTheCap) {
  Reconnect r(policy());
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  // With u just below 1 the delay is just below the ceiling: 100, 200, 400, 800, then the 1000 cap.
  const long expected[] = {99, 199, 399, 799, 999, 999, 999};
  for (long e : expected) EXPECT_EQ(r.failed(t0, 0.999).delay.count(), e);
  // Full jitter: u = 0 gives the minimum (never zero, so a loop always yields).
  EXPECT_EQ(r.failed(t0, 0.0).delay.count(), 1);
}

TEST(Reconnect, UpEndsTheOutageOnceAndReportsItsLength) {
  Reconnect r(policy());
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  EXPECT_FALSE(r.up(t0)) << "already up: not a state change";
  (void)r.failed(t0, 0.5);
  (void)r.failed(t0 + milliseconds(300), 0.5);
  EXPECT_TRUE(r.up(t0 + milliseconds(1500)));
  EXPECT_EQ(r.last_outage(), milliseconds(1500));
  EXPECT_EQ(r.attempts(), 0U);
  EXPECT_FALSE(r.up(t0 + milliseconds(1600)));
}

TEST(Reconnect, BackoffResetsOnlyAfterTheConnectionStayedHealthy) {
  Reconnect r(policy());
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 4; ++i) (void)r.failed(t0, 0.999);  // ceiling now 1000 (capped)
  r.up(t0 + milliseconds(10));
  // Fails again 1 s later (a flapping connection): no fresh start, the delay stays at the cap.
  EXPECT_EQ(r.failed(t0 + milliseconds(1010), 0.999).delay.count(), 999);
  r.up(t0 + milliseconds(2000));
  // Fails after staying up 10 s: starts over from the initial delay.
  const auto d = r.failed(t0 + milliseconds(12'000), 0.999);
  EXPECT_TRUE(d.state_change);
  EXPECT_EQ(d.delay.count(), 99);
}

TEST(Reconnect, GivesUpAfterMaxAttemptsAndNeverWithZero) {
  Reconnect limited(policy(3));
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  EXPECT_FALSE(limited.failed(t0, 0.5).give_up);
  EXPECT_FALSE(limited.failed(t0, 0.5).give_up);
  EXPECT_TRUE(limited.failed(t0, 0.5).give_up);
  // A success in between starts the count again.
  Reconnect r(policy(3));
  (void)r.failed(t0, 0.5);
  (void)r.failed(t0, 0.5);
  r.up(t0 + milliseconds(5));
  EXPECT_FALSE(r.failed(t0 + milliseconds(6), 0.5).give_up);
  Reconnect forever(policy(0));
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(forever.failed(t0, 0.5).give_up);
}

}  // namespace
}  // namespace pgferry
