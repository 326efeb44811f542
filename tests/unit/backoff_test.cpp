// Retry delays: exponential ceiling, full jitter, cap, reset.
#include "backoff.hpp"

#include <gtest/gtest.h>

namespace pgferry {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, FirstDelayIsDrawnUnderTheInitialDelay) {
  Backoff b;
  EXPECT_EQ(b.ceiling(), milliseconds(100));
  // Never zero: a retry loop always yields to the event loop for at least a millisecond.
  EXPECT_EQ(b.next(0.0), milliseconds(1));
  Backoff c;
  const auto d = c.next(0.999);
  EXPECT_GE(d, milliseconds(99));
  EXPECT_LT(d, milliseconds(100));
}

TEST(Backoff, CeilingDoublesPerFailure) {
  Backoff b;
  for (long expected : {100L, 200L, 400L, 800L, 1600L}) {
    EXPECT_EQ(b.ceiling(), milliseconds(expected));
    const auto d = b.next(0.5);
    EXPECT_EQ(d, milliseconds(expected / 2));
  }
  EXPECT_EQ(b.attempts(), 5U);
}

TEST(Backoff, CapHoldsAfterManyFailuresWithoutOverflow) {
  Backoff b(BackoffPolicy{.initial = milliseconds(100), .cap = milliseconds(30'000), .multiplier = 2.0});
  for (int i = 0; i < 1000; ++i) {
    const auto d = b.next(0.999999);
    ASSERT_GE(d, milliseconds(1)) << "attempt " << i;
    ASSERT_LT(d, milliseconds(30'000)) << "attempt " << i;
  }
  EXPECT_EQ(b.ceiling(), milliseconds(30'000));
  EXPECT_GE(b.next(0.999999), milliseconds(29'000));
}

TEST(Backoff, ResetStartsOver) {
  Backoff b;
  for (int i = 0; i < 10; ++i) (void)b.next(0.5);
  b.reset();
  EXPECT_EQ(b.attempts(), 0U);
  EXPECT_EQ(b.ceiling(), milliseconds(100));
}

TEST(Backoff, CeilingDoesNotConsumeAnAttempt) {
  Backoff b;
  (void)b.ceiling();
  (void)b.ceiling();
  EXPECT_EQ(b.attempts(), 0U);
  (void)b.next(0.3);
  EXPECT_EQ(b.attempts(), 1U);
  EXPECT_EQ(b.ceiling(), milliseconds(200));
}

TEST(Backoff, FollowsACustomPolicy) {
  Backoff b(BackoffPolicy{.initial = milliseconds(50), .cap = milliseconds(1000), .multiplier = 3.0});
  for (long expected : {50L, 150L, 450L, 1000L, 1000L}) {
    EXPECT_EQ(b.ceiling(), milliseconds(expected));
    EXPECT_EQ(b.next(0.5), milliseconds(expected / 2));
  }
}

TEST(Backoff, CapBelowInitialWins) {
  Backoff b(BackoffPolicy{.initial = milliseconds(5000), .cap = milliseconds(1000), .multiplier = 2.0});
  EXPECT_EQ(b.ceiling(), milliseconds(1000));
  EXPECT_LT(b.next(0.999), milliseconds(1000));
}

TEST(Backoff, JitterIsUniformUnderTheCeiling) {
  Backoff b(BackoffPolicy{.initial = milliseconds(1000), .cap = milliseconds(60'000), .multiplier = 2.0});
  EXPECT_EQ(b.next(0.25), milliseconds(250));
  EXPECT_EQ(b.next(0.25), milliseconds(500));
  EXPECT_EQ(b.next(0.0), milliseconds(1));   // Never zero.
  EXPECT_EQ(b.next(-3.0), milliseconds(1));  // Out-of-range randomness is clamped, not trusted.
  EXPECT_EQ(b.attempts(), 4U);
}

TEST(Backoff, UnboundedCapNeverOverflows) {
  Backoff b(BackoffPolicy{.initial = milliseconds(100), .cap = milliseconds::max(), .multiplier = 2.0});
  for (int i = 0; i < 1000; ++i) (void)b.next(0.5);
  EXPECT_GT(b.ceiling(), milliseconds(0));
  EXPECT_GE(b.next(0.5), milliseconds(1));
}

}  // namespace
}  // namespace pgferry
