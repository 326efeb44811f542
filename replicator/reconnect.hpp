#pragma once
// The reconnect controller of one connection (LISTEN, reader, applier): when to try again after
// a failure, when to forget past failures, when to give up, and which events deserve a log line
// at full volume. Pure: time and randomness are arguments, so tests need no clock and no RNG.
//
// States: up (connected), down (failed; the next attempt is due at a time). A failure while up
// is a state change (logged once, with the next retry time); failures while down are retries
// (debug), with a reminder at warning level every `kReminderEvery` attempts; the first success
// after being down is a state change again (logged with how long it was down).

#include <chrono>
#include <cstdint>
#include <string>

#include "backoff.hpp"

namespace pgferry {

/// Settings of a reconnect controller (config `reconnect:`): delays grow exponentially from
/// `initial_delay` to `max_delay` with full jitter; after a connection stayed up for
/// `healthy_after` they start again from `initial_delay`; `max_attempts` consecutive failures of
/// one connection make `run` exit 1 (0: retry forever).
struct ReconnectPolicy {
  std::chrono::milliseconds initial_delay{100};
  std::chrono::milliseconds max_delay{30'000};
  /// Consecutive failed attempts after which the controller gives up; 0 retries forever.
  std::int64_t max_attempts = 0;
  /// A connection that stayed up this long starts over from initial_delay when it next fails.
  std::chrono::milliseconds healthy_after{10'000};
};

class Reconnect {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::uint32_t kReminderEvery = 10;

  explicit Reconnect(ReconnectPolicy policy)
      : policy_(policy), backoff_(BackoffPolicy{policy.initial_delay, policy.max_delay, 2.0}) {}

  /// What to do after a failure.
  struct Decision {
    std::chrono::milliseconds delay{0};  // wait this long before the next attempt
    std::uint32_t attempt = 0;           // consecutive failures so far (1 for the first)
    bool state_change = false;           // the connection was up until now: log at full volume
    bool reminder = false;               // still down after another kReminderEvery attempts
    bool give_up = false;                // max_attempts reached: stop trying
  };

  /// The connection (or an attempt to open it) failed at `now`. `unit_interval` in [0, 1).
  [[nodiscard]] Decision failed(Clock::time_point now, double unit_interval);

  /// The connection is up at `now` (connected, or a statement on it succeeded). Returns true
  /// when this ends a down period (a state change worth one log line).
  bool up(Clock::time_point now);

  [[nodiscard]] bool is_up() const noexcept { return up_; }
  /// Consecutive failed attempts of the current down period (0 while up).
  [[nodiscard]] std::uint32_t attempts() const noexcept { return attempts_; }
  /// How long the last down period lasted, as of the up() that ended it.
  [[nodiscard]] std::chrono::milliseconds last_outage() const noexcept { return last_outage_; }

 private:
  ReconnectPolicy policy_;
  Backoff backoff_;
  bool up_ = true;  // a fresh controller's first failure is a state change
  Clock::time_point up_since_{};
  Clock::time_point down_since_{};
  std::uint32_t attempts_ = 0;
  std::chrono::milliseconds last_outage_{0};
};

}  // namespace pgferry
