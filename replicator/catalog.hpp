#pragma once
// Reads what pgferry needs to know about tables from a database's catalog, and inspects a whole
// configuration against both databases (shared by `check` and `setup`).

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "mapping.hpp"
#include "pg.hpp"

namespace pgferry {

/// A table's catalog description plus its oid (0 when it does not exist).
struct CatalogTable {
  TableInfo info;
  std::string oid;
};

/// Reads one table's columns and keys. A missing table is not an error: info.exists is false.
[[nodiscard]] Result<CatalogTable> load_table(Session& db, const sql::QualifiedName& name);

/// The privileges in `wanted` (e.g. "SELECT", "TRIGGER") that the session's role lacks on `oid`.
[[nodiscard]] Result<std::vector<std::string>> missing_table_privileges(Session& db, const std::string& oid,
                                                                        const std::vector<std::string>& wanted);

/// Whether schema pgferry exists, and if not, whether this role may create it.
struct SchemaAccess {
  bool schema_exists = false;
  bool can_create = false;
  std::string fix;  // when it cannot create the schema: the GRANT to run, with the real names
};
[[nodiscard]] Result<SchemaAccess> pgferry_schema_access(Session& db);

/// A configured table inspected against both databases.
struct InspectedTable {
  const TableConfig* config = nullptr;
  CatalogTable source;
  CatalogTable target;
  ResolvedTable resolved;
  std::vector<Problem> privilege_problems;  // the role lacks rights: a runtime problem, not config
};

/// Every configured table inspected. Problems are collected, not returned as errors; only a
/// failing query is an error.
[[nodiscard]] Result<std::vector<InspectedTable>> inspect(Session& source, Session& target, const Config& config);

}  // namespace pgferry
