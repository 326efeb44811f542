#include "errors_cmd.hpp"

#include <fmt/format.h>

namespace pgferry {

int run_errors(const Config&, const ErrorsOptions&) {
  fmt::print(stderr, "error: errors: being built\n");
  return 1;
}

}  // namespace pgferry
