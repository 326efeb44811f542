#pragma once
// Logging setup: spdlog to stderr, human text on a terminal, JSON lines otherwise.

#include <string>

#include "result.hpp"

namespace pgferry {

/// Configures the default logger. `level`: trace|debug|info|warn|error|off. `format`:
/// auto (text when stderr is a terminal, else json) | text | json.
[[nodiscard]] Status init_logging(const std::string& level, const std::string& format);

}  // namespace pgferry
