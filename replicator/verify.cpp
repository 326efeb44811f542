#include "verify.hpp"

#include <fmt/format.h>

namespace pgferry {

int run_verify(const Config&, const VerifyOptions&) {
  fmt::print(stderr, "error: verify: being built\n");
  return 1;
}

struct VerifyScheduler::Impl {};
VerifyScheduler::VerifyScheduler(const Config&, std::vector<StreamTable>, Control&)
    : impl_(std::make_unique<Impl>()) {}
VerifyScheduler::~VerifyScheduler() = default;
void VerifyScheduler::start() {}
void VerifyScheduler::stop() {}

}  // namespace pgferry
