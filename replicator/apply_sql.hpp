#pragma once
// The set-based statements the applier prepares once per target table, and the SQL of the
// initial copy. Pure: rendering only. Every name is quoted; values travel as one jsonb
// parameter ($1, a JSON array of row objects keyed by target column name).

#include <map>
#include <string>
#include <vector>

#include "sql.hpp"

namespace pgferry::apply {

/// Advisory lock class (the two-int4 form) on the target. Every applied batch holds
/// (kTableLockClass, table id) shared for each table it writes, until it commits; whatever writes
/// a table from a fresh read of the source instead of the journal (the sweep, `verify --repair`,
/// `errors retry`) holds it exclusively, takes its source snapshot only then, and writes in the
/// same target transaction. So such a write never lands between a batch's read and its commit, and
/// never overwrites a newer journaled change with an older read. 0x70676673 is "pgfs".
inline constexpr int kTableLockClass = 0x70676673;

/// SELECT pg_advisory_xact_lock[_shared](kTableLockClass, id) for each table id, in id order
/// (one statement; deadlock-free against writers that lock one table at a time).
[[nodiscard]] std::string render_table_locks(const std::vector<int>& table_ids, bool shared);

/// A target table as the applier writes it.
struct TargetShape {
  sql::QualifiedName table;
  std::vector<std::string> columns;  // target columns pgferry writes (the mapped ones)
  std::vector<std::string> key;      // target key columns (a subset of columns)
  /// Target json/jsonb columns whose source value was journaled as its text form (a JSON string,
  /// see capture::captured_as_text), with the target type (format_type) to cast that text to.
  std::map<std::string, std::string> from_text;
};

/// How the upsert decides that a row did not change and skips the write.
enum class Compare : unsigned char {
  Native,  // (t.a, t.b) IS DISTINCT FROM (excluded.a, excluded.b)
  Text,    // the same over ::text, for types without an equality operator (json, point, ...)
};

/// INSERT ... SELECT FROM jsonb_populate_recordset($1) ON CONFLICT (key) DO UPDATE ... WHERE the
/// row differs: one statement writes every upsert of a batch, and skips no-op writes.
[[nodiscard]] std::string render_upsert(const TargetShape& t, Compare compare);

/// DELETE ... USING jsonb_populate_recordset($1) matching on the key: one statement per batch.
[[nodiscard]] std::string render_delete(const TargetShape& t);

/// The source side of the initial copy: COPY (SELECT the mapped columns WHERE filter) TO STDOUT.
/// `source_columns` are in the same order as the target columns they fill.
[[nodiscard]] std::string render_copy_out(const sql::QualifiedName& source,
                                          const std::vector<std::string>& source_columns, const std::string& where);

/// The target side of the initial copy: a temporary staging table shaped like the target's
/// written columns, the COPY into it, the upsert from it and the delete of target rows the
/// source does not have. `staging` is an unqualified temp table name.
struct CopyIn {
  std::string create_staging;
  std::string copy_in;
  std::string copy_direct;  // COPY straight into the target table (when it is empty)
  std::string upsert;
  std::string delete_missing;
  std::string drop_staging;
};
[[nodiscard]] CopyIn render_copy_in(const TargetShape& t, const std::string& staging, Compare compare);

}  // namespace pgferry::apply
