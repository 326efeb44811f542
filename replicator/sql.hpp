#pragma once
// Identifier and literal quoting, and parsing of the names users write in pgferry.yaml.
// Names follow PostgreSQL's rules: unquoted identifiers fold to lower case, "quoted" ones keep
// their exact spelling, and "" inside quotes is one double quote.

#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"

namespace pgferry::sql {

/// Quotes an identifier for SQL text, always: "users", "My ""odd"" name".
[[nodiscard]] std::string quote_ident(std::string_view name);

/// Quotes a string literal for SQL text: 'it''s'. Backslashes are ordinary characters because
/// pgferry always runs with standard_conforming_strings on (the PostgreSQL default).
[[nodiscard]] std::string quote_literal(std::string_view value);

/// A schema-qualified relation name with both parts in their exact (unquoted) spelling.
struct QualifiedName {
  std::string schema;
  std::string name;

  /// The name as SQL: "schema"."name".
  [[nodiscard]] std::string quoted() const;
  /// The name for people: schema.name, with quotes only where SQL would need them.
  [[nodiscard]] std::string display() const;

  friend bool operator==(const QualifiedName&, const QualifiedName&) = default;
  friend auto operator<=>(const QualifiedName&, const QualifiedName&) = default;  // NOLINT(modernize-use-nullptr)
};

/// Parses one identifier as written in SQL: `Users` -> users, `"Users"` -> Users.
/// Fails on empty input, unbalanced quotes, or characters that need quoting in an unquoted name.
[[nodiscard]] Result<std::string> parse_identifier(std::string_view text);

/// Parses `schema.table`, `table` (schema defaults to `default_schema`), with either part quoted.
[[nodiscard]] Result<QualifiedName> parse_qualified_name(std::string_view text,
                                                         std::string_view default_schema = "public");

/// True when `name` would come out of an unquoted identifier unchanged (lower case, no specials).
[[nodiscard]] bool is_plain_identifier(std::string_view name);

/// Joins quoted identifiers with ", ".
[[nodiscard]] std::string quote_ident_list(const std::vector<std::string>& names);

}  // namespace pgferry::sql
