#pragma once
// Retry delays: exponential growth with full jitter, capped. The randomness is an argument so
// tests need no random number generator and every delay is reproducible.

#include <chrono>
#include <cstdint>

namespace pgferry {

/// Backoff policy settings.
struct BackoffPolicy {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds cap{30'000};
  double multiplier = 2.0;
};

/// Delays for one connection or operation's consecutive failures.
class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}) : policy_(policy) {}

  /// The delay before the next attempt: uniform in [0, min(cap, initial * multiplier^n)) where
  /// n counts the failures since the last reset ("full jitter"). `unit_interval` is a random
  /// number in [0, 1).
  [[nodiscard]] std::chrono::milliseconds next(double unit_interval);
  /// The ceiling the next delay is drawn under, without consuming an attempt.
  [[nodiscard]] std::chrono::milliseconds ceiling() const;
  /// Forgets past failures: the next delay starts again from `initial`.
  void reset() noexcept { attempts_ = 0; }
  /// How many delays have been handed out since the last reset.
  [[nodiscard]] std::uint32_t attempts() const noexcept { return attempts_; }

 private:
  BackoffPolicy policy_;
  std::uint32_t attempts_ = 0;
};

}  // namespace pgferry
