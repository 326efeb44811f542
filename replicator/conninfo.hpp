#pragma once
// Connection strings with secrets removed, for messages and logs.

#include <string>
#include <string_view>

namespace pgferry {

/// Returns `conninfo` (key=value form or a postgres:// / postgresql:// URI) with every password
/// replaced by "****": the password key, the user:password@ part of a URI, and password=... in
/// a URI's query string. Anything that does not parse is redacted whole rather than leaked.
[[nodiscard]] std::string redact_conninfo(std::string_view conninfo);

/// Removes every occurrence of the password found in `conninfo` from `text` (for server and
/// libpq messages that might echo it). Returns `text` unchanged when there is no password.
[[nodiscard]] std::string scrub_password(std::string text, std::string_view conninfo);

}  // namespace pgferry
