#include "backoff.hpp"

#include <algorithm>
#include <cmath>

namespace pgferry {

std::chrono::milliseconds Backoff::ceiling() const {
  const double initial = static_cast<double>(policy_.initial.count());
  const double cap = static_cast<double>(policy_.cap.count());
  // Stop growing once past the cap, so the power never overflows.
  const double grown = initial * std::pow(policy_.multiplier, std::min<std::uint32_t>(attempts_, 64));
  // Compared as doubles, returned without a round trip through double when the cap applies: a cap
  // near milliseconds::max() is not exactly representable, and converting it back overflows.
  if (!(grown < cap)) return policy_.cap;
  return std::chrono::milliseconds(static_cast<std::int64_t>(grown));
}

std::chrono::milliseconds Backoff::next(double unit_interval) {
  const double u = std::clamp(unit_interval, 0.0, 1.0);
  const auto ceil = ceiling();
  ++attempts_;
  // Never zero: a reconnect loop must yield to the event loop between attempts.
  const auto ms = static_cast<std::int64_t>(u * static_cast<double>(ceil.count()));
  return std::chrono::milliseconds(std::max<std::int64_t>(1, ms));
}

}  // namespace pgferry
