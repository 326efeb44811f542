#include "reconnect.hpp"

namespace pgferry {

Reconnect::Decision Reconnect::failed(Clock::time_point now, double unit_interval) {
  Decision d;
  if (up_) {
    // Only a connection that stayed up long enough earns a fresh start; one that flaps keeps
    // backing off.
    if (now - up_since_ >= policy_.healthy_after) backoff_.reset();
    up_ = false;
    down_since_ = now;
    d.state_change = true;
  }
  ++attempts_;
  d.attempt = attempts_;
  d.delay = backoff_.next(unit_interval);
  d.reminder = !d.state_change && attempts_ % kReminderEvery == 0;
  d.give_up = policy_.max_attempts > 0 && static_cast<std::int64_t>(attempts_) >= policy_.max_attempts;
  return d;
}

bool Reconnect::up(Clock::time_point now) {
  if (up_) return false;
  up_ = true;
  up_since_ = now;
  last_outage_ = std::chrono::duration_cast<std::chrono::milliseconds>(now - down_since_);
  const bool was_down = attempts_ > 0;
  attempts_ = 0;
  return was_down;
}

}  // namespace pgferry
