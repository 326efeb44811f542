#include "conninfo.hpp"

#include <algorithm>
#include <optional>
#include <vector>

namespace pgferry {
namespace {

constexpr std::string_view kMask = "****";

// Keywords whose values are secrets: the password, and the passphrase of the client's SSL key.
bool is_secret_key(std::string_view key) { return key == "password" || key == "sslpassword"; }

bool is_uri(std::string_view s) { return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0; }

// libpq splits keyword/value pairs on isspace() in the C locale: \f and \v count too.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// One key=value pair of a keyword/value conninfo, with the value's byte range in the input.
struct Pair {
  std::string key;
  std::string value;  // unquoted, unescaped
  size_t value_begin = 0;
  size_t value_end = 0;
};

// Parses libpq's keyword/value format: key = value, values optionally 'single quoted' with \'
// and \\ escapes. Returns nullopt when it does not parse.
std::optional<std::vector<Pair>> parse_pairs(std::string_view s) {
  std::vector<Pair> out;
  size_t i = 0;
  for (;;) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size()) break;
    Pair p;
    while (i < s.size() && s[i] != '=' && !is_space(s[i])) p.key.push_back(s[i++]);
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size() || s[i] != '=' || p.key.empty()) return std::nullopt;
    ++i;
    while (i < s.size() && is_space(s[i])) ++i;
    p.value_begin = i;
    if (i < s.size() && s[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          p.value.push_back(s[i + 1]);
          i += 2;
        } else if (s[i] == '\'') {
          ++i;
          closed = true;
          break;
        } else {
          p.value.push_back(s[i++]);
        }
      }
      if (!closed) return std::nullopt;
    } else {
      while (i < s.size() && !is_space(s[i])) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        p.value.push_back(s[i++]);
      }
    }
    p.value_end = i;
    out.push_back(std::move(p));
  }
  return out;
}

// Percent-decodes a URI component.
std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Byte ranges (begin, end) of every password in a URI, and the decoded passwords.
void uri_passwords(std::string_view uri, std::vector<std::pair<size_t, size_t>>* ranges,
                   std::vector<std::string>* values) {
  const size_t scheme_end = uri.find("://") + 3;
  const size_t authority_end = std::min(uri.find_first_of("/?", scheme_end), uri.size());
  const auto authority = uri.substr(scheme_end, authority_end - scheme_end);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const auto userinfo = authority.substr(0, at);
    if (const auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      ranges->emplace_back(scheme_end + colon + 1, scheme_end + at);
      values->push_back(percent_decode(userinfo.substr(colon + 1)));
    }
  }
  if (const auto q = uri.find('?', scheme_end); q != std::string_view::npos) {
    size_t i = q + 1;
    while (i < uri.size()) {
      size_t amp = uri.find('&', i);
      if (amp == std::string_view::npos) amp = uri.size();
      const auto param = uri.substr(i, amp - i);
      // libpq percent-decodes keywords as well as values: pass%77ord= is password=.
      const auto eq = param.find('=');
      if (eq != std::string_view::npos && is_secret_key(percent_decode(param.substr(0, eq)))) {
        ranges->emplace_back(i + eq + 1, amp);
        values->push_back(percent_decode(param.substr(eq + 1)));
      }
      i = amp + 1;
    }
  }
}

}  // namespace

std::string redact_conninfo(std::string_view conninfo) {
  std::string out(conninfo);
  std::vector<std::pair<size_t, size_t>> ranges;
  if (is_uri(conninfo)) {
    std::vector<std::string> ignored;
    uri_passwords(conninfo, &ranges, &ignored);
  } else {
    auto pairs = parse_pairs(conninfo);
    if (!pairs) return "(unparsable connection string, not shown)";
    for (const auto& p : *pairs) {
      if (is_secret_key(p.key)) ranges.emplace_back(p.value_begin, p.value_end);
    }
  }
  // Replace from the back so earlier offsets stay valid.
  std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& range : ranges) {
    out.replace(range.first, range.second - range.first, kMask);
  }
  return out;
}

std::string scrub_password(std::string text, std::string_view conninfo) {
  std::vector<std::string> passwords;
  if (is_uri(conninfo)) {
    std::vector<std::pair<size_t, size_t>> ranges;
    uri_passwords(conninfo, &ranges, &passwords);
    for (const auto& r : ranges) passwords.emplace_back(conninfo.substr(r.first, r.second - r.first));
  } else if (auto pairs = parse_pairs(conninfo)) {
    for (const auto& p : *pairs) {
      if (is_secret_key(p.key)) passwords.push_back(p.value);
    }
  }
  for (const auto& pw : passwords) {
    if (pw.empty()) continue;
    for (size_t pos = text.find(pw); pos != std::string::npos; pos = text.find(pw, pos + kMask.size())) {
      text.replace(pos, pw.size(), kMask);
    }
  }
  return text;
}

std::vector<std::pair<std::string, std::string>> connection_defaults(std::chrono::milliseconds keepalives_idle,
                                                                     std::chrono::milliseconds tcp_user_timeout,
                                                                     std::chrono::milliseconds connect_timeout) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  std::vector<std::pair<std::string, std::string>> out;
  const auto idle = duration_cast<seconds>(keepalives_idle).count();
  if (idle > 0) {
    out.emplace_back("keepalives", "1");
    out.emplace_back("keepalives_idle", std::to_string(idle));
    out.emplace_back("keepalives_interval", std::to_string(std::max<long long>(1, idle / 3)));
    out.emplace_back("keepalives_count", "3");
  }
  if (tcp_user_timeout.count() > 0) out.emplace_back("tcp_user_timeout", std::to_string(tcp_user_timeout.count()));
  const auto ct = duration_cast<seconds>(connect_timeout).count();
  if (ct > 0) out.emplace_back("connect_timeout", std::to_string(ct));
  return out;
}

}  // namespace pgferry
