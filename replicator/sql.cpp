#include "sql.hpp"

#include <fmt/format.h>

namespace pgferry::sql {
namespace {

bool is_ident_start(unsigned char c) {
  // PostgreSQL accepts any byte >= 0x80 in an unquoted identifier (multibyte letters).
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

bool is_ident_char(unsigned char c) { return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$'; }

// Splits off one identifier from the front of `text`, returning it and the remaining text.
Result<std::pair<std::string, std::string_view>> take_identifier(std::string_view text, std::string_view whole) {
  std::string out;
  if (text.empty()) {
    return config_error({}, fmt::format("'{}' has an empty name part", whole), "write a name such as public.users");
  }
  if (text.front() == '"') {
    size_t i = 1;
    for (;;) {
      if (i >= text.size()) {
        return config_error({}, fmt::format("'{}' has an unterminated quoted identifier", whole),
                            "close the quote, and write a double quote inside a name as \"\"");
      }
      if (text[i] == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          out.push_back('"');
          i += 2;
          continue;
        }
        ++i;
        break;
      }
      out.push_back(text[i++]);
    }
    if (out.empty()) {
      return config_error({}, fmt::format("'{}' has an empty quoted identifier", whole),
                          "a quoted name needs at least one character");
    }
    return std::pair{std::move(out), text.substr(i)};
  }
  size_t i = 0;
  while (i < text.size() && text[i] != '.') {
    const auto c = static_cast<unsigned char>(text[i]);
    if (i == 0 ? !is_ident_start(c) : !is_ident_char(c)) {
      return config_error({}, fmt::format("'{}' is not a valid name: character '{}' needs quoting", whole, text[i]),
                          "put the name part in double quotes, e.g. public.\"Order Items\"");
    }
    // Unquoted identifiers fold ASCII letters to lower case, as PostgreSQL does.
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c));
    ++i;
  }
  if (out.empty()) {
    return config_error({}, fmt::format("'{}' has an empty name part", whole), "write a name such as public.users");
  }
  if (out.size() > 63) {
    return config_error({}, fmt::format("'{}' is longer than PostgreSQL's 63-byte name limit", whole),
                        "use the name as PostgreSQL stores it (truncated to 63 bytes)");
  }
  return std::pair{std::move(out), text.substr(i)};
}

}  // namespace

std::string quote_ident(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string quote_literal(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  out.push_back('\'');
  for (char c : value) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

bool is_plain_identifier(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c >= 'A' && c <= 'Z') return false;
    if (c >= 0x80) return false;
    if (i == 0 ? !is_ident_start(c) : !is_ident_char(c)) return false;
  }
  return true;
}

std::string QualifiedName::quoted() const { return quote_ident(schema) + "." + quote_ident(name); }

std::string QualifiedName::display() const {
  auto part = [](const std::string& s) { return is_plain_identifier(s) ? s : quote_ident(s); };
  return part(schema) + "." + part(name);
}

Result<std::string> parse_identifier(std::string_view text) {
  auto r = take_identifier(text, text);
  if (!r) return std::move(r).error();
  if (!r->second.empty()) {
    return config_error({}, fmt::format("'{}' is not a single name", text),
                        "write one column name; quote it if it contains '.' or spaces");
  }
  return std::move(r->first);
}

Result<QualifiedName> parse_qualified_name(std::string_view text, std::string_view default_schema) {
  auto first = take_identifier(text, text);
  if (!first) return std::move(first).error();
  auto rest = first->second;
  if (rest.empty()) return QualifiedName{std::string(default_schema), std::move(first->first)};
  if (rest.front() != '.') {
    return config_error({}, fmt::format("'{}' has text after a quoted name", text),
                        "write schema.table, e.g. public.\"Users\"");
  }
  auto second = take_identifier(rest.substr(1), text);
  if (!second) return std::move(second).error();
  if (!second->second.empty()) {
    return config_error({}, fmt::format("'{}' has more than two name parts", text),
                        "write schema.table; pgferry replicates within one database");
  }
  return QualifiedName{std::move(first->first), std::move(second->first)};
}

std::string quote_ident_list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += quote_ident(n);
  }
  return out;
}

}  // namespace pgferry::sql
