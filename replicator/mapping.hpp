#pragma once
// Resolves a configured table against what the source and target catalogs say: which source
// column goes to which target column, the key, and every reason the pair cannot replicate.
// Pure: the catalogs are read elsewhere (catalog.*) and passed in.

#include <functional>
#include <string>
#include <vector>

#include "config.hpp"

namespace pgferry {

/// One column as a catalog describes it.
struct ColumnInfo {
  std::string name;
  std::string type;       // format_type(), e.g. "character varying(20)"
  std::string base_type;  // type name without modifiers, e.g. "character varying"
  char category = 'U';    // pg_type.typcategory: N numeric, S string, ...
  bool not_null = false;
  bool has_default = false;              // a default or an identity/generated value
  bool generated = false;                // GENERATED ALWAYS AS (...) STORED
  std::vector<std::string> enum_labels;  // for enum types
};

/// One table as a catalog describes it.
struct TableInfo {
  bool exists = false;
  std::vector<ColumnInfo> columns;                    // in attnum order
  std::vector<std::string> primary_key;               // in key order; empty when there is none
  std::vector<std::vector<std::string>> unique_keys;  // non-partial unique indexes, without expressions
  /// An ordinary table that is neither a partition nor an inheritance child (its INSERTs can be
  /// captured per statement).
  bool plain = false;

  [[nodiscard]] const ColumnInfo* column(const std::string& name) const;
};

/// One reason a table cannot replicate as configured.
struct Problem {
  std::string message;  // names the table, the column and the value
  std::string fix;
};

/// A configured table resolved against both catalogs.
struct ResolvedTable {
  std::vector<ColumnMapping> columns;   // every replicated column, source -> target
  std::vector<std::string> source_key;  // source primary key columns
  std::vector<std::string> target_key;  // the target columns they map to
  std::vector<Problem> problems;        // empty when the table can replicate
  /// Every problem is on the target side (a missing target table or column, a type or key the
  /// target lacks) and the source side resolved: `run` can start with the table stopped.
  bool target_only = false;
  std::vector<std::string> notes;  // things worth saying that do not stop it
};

/// Asks the target whether values of `source_type` can be assigned to `target_type`.
using AssignmentCastCheck = std::function<bool(const std::string& source_type, const std::string& target_type)>;

/// Resolves `table` against the source and target catalogs.
[[nodiscard]] ResolvedTable resolve_table(const TableConfig& table, const TableInfo& source, const TableInfo& target,
                                          const AssignmentCastCheck& has_assignment_cast);

}  // namespace pgferry
