#pragma once
// Logging setup: spdlog to stderr, human text on a terminal, JSON lines otherwise.

#include <cstdio>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "result.hpp"

namespace pgferry {

/// Configures the default logger. `level`: trace|debug|info|warn|error|off. `format`:
/// auto (text when stderr is a terminal, else json) | text | json.
[[nodiscard]] Status init_logging(const std::string& level, const std::string& format);

/// Prints to stderr and ignores a failed write. fmt::print throws on one, and a closed stderr
/// (a log pipe whose reader went away; `pgferry run` ignores SIGPIPE, and so does civetweb) must
/// not stop the replicator: it goes on without its log, the metrics and /status still served.
template <typename... Args>
void print_stderr(fmt::format_string<Args...> format, Args&&... args) {
  const std::string text = fmt::format(format, std::forward<Args>(args)...);
  (void)std::fwrite(text.data(), 1, text.size(), stderr);
}

}  // namespace pgferry
