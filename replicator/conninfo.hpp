#pragma once
// Connection strings with secrets removed, for messages and logs.

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgferry {

/// Returns `conninfo` (key=value form or a postgres:// / postgresql:// URI) with every password
/// replaced by "****": the password key, the user:password@ part of a URI, and password=... in
/// a URI's query string. Anything that does not parse is redacted whole rather than leaked.
[[nodiscard]] std::string redact_conninfo(std::string_view conninfo);

/// Removes every occurrence of the password found in `conninfo` from `text` (for server and
/// libpq messages that might echo it). Returns `text` unchanged when there is no password.
[[nodiscard]] std::string scrub_password(std::string text, std::string_view conninfo);

/// libpq keywords and values set under every connection pgferry opens; the user's conninfo may
/// override any of them. TCP keepalives (probes after `keepalives_idle`, then every third of it,
/// three unanswered probes end the connection) and tcp_user_timeout (unacknowledged data for that
/// long ends it: a cable pulled mid-query) make a dead peer an error within seconds instead of
/// the kernel's two hours; connect_timeout bounds a connection attempt. A zero duration leaves
/// that setting to the system.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> connection_defaults(
    std::chrono::milliseconds keepalives_idle, std::chrono::milliseconds tcp_user_timeout,
    std::chrono::milliseconds connect_timeout);

}  // namespace pgferry
