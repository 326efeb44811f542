#include "apply_sql.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace pgferry::apply {
namespace {

std::string joined(const std::vector<std::string>& names, const std::string& prefix, const std::string& suffix = {}) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += prefix + sql::quote_ident(n) + suffix;
  }
  return out;
}

/// The value of target column `column` from the recordset row `alias`: as decoded, or, for a
/// column journaled as text, that text cast back to the column's type.
std::string value_of(const TargetShape& t, const std::string& column, const std::string& alias) {
  auto q = alias + "." + sql::quote_ident(column);
  const auto it = t.from_text.find(column);
  if (it == t.from_text.end()) return q;
  return fmt::format("({} #>> '{{}}')::{}", q, it->second);
}

/// value_of() for every column of `t`, comma-separated.
std::string values_of(const TargetShape& t, const std::string& alias) {
  std::string out;
  for (const auto& c : t.columns) {
    if (!out.empty()) out += ", ";
    out += value_of(t, c, alias);
  }
  return out;
}

std::vector<std::string> non_key(const TargetShape& t) {
  std::vector<std::string> out;
  for (const auto& c : t.columns) {
    bool is_key = false;
    for (const auto& k : t.key) is_key = is_key || k == c;
    if (!is_key) out.push_back(c);
  }
  return out;
}

/// INSERT INTO target (cols) <select> ON CONFLICT (key) DO UPDATE ... — shared by the stream
/// upsert and the copy's upsert from staging.
std::string upsert_from(const TargetShape& t, const std::string& select, Compare compare) {
  const auto rest = non_key(t);
  std::string out = fmt::format("INSERT INTO {} AS t ({}) {} ON CONFLICT ({}) DO ", t.table.quoted(),
                                joined(t.columns, ""), select, joined(t.key, ""));
  if (rest.empty()) return out + "NOTHING";
  const std::string cast = compare == Compare::Text ? "::text" : "";
  out += fmt::format("UPDATE SET ({}) = ROW({}) WHERE ({}) IS DISTINCT FROM ({})", joined(rest, ""),
                     joined(rest, "EXCLUDED."), joined(rest, "t.", cast), joined(rest, "EXCLUDED.", cast));
  // A one-column SET needs no ROW (and a one-element ROW is refused); write it plainly.
  if (rest.size() == 1) {
    const auto c = sql::quote_ident(rest[0]);
    out = fmt::format(
        "INSERT INTO {} AS t ({}) {} ON CONFLICT ({}) DO UPDATE SET {} = EXCLUDED.{} "
        "WHERE t.{}{} IS DISTINCT FROM EXCLUDED.{}{}",
        t.table.quoted(), joined(t.columns, ""), select, joined(t.key, ""), c, c, c, cast, c, cast);
  }
  return out;
}

/// left.k = right.k for every key column; `decoded` says `right` is the recordset (whose
/// text-journaled columns need value_of()).
std::string key_match(const TargetShape& t, const std::string& left, const std::string& right, bool decoded = false) {
  std::string out;
  for (const auto& k : t.key) {
    if (!out.empty()) out += " AND ";
    const auto q = sql::quote_ident(k);
    out += fmt::format("{}.{} = {}", left, q, decoded ? value_of(t, k, right) : right + "." + q);
  }
  return out;
}

}  // namespace

std::string render_upsert(const TargetShape& t, Compare compare) {
  const std::string select = fmt::format("SELECT {} FROM jsonb_populate_recordset(NULL::{}, $1::jsonb) AS r",
                                         values_of(t, "r"), t.table.quoted());
  return upsert_from(t, select, compare);
}

std::string render_delete(const TargetShape& t) {
  return fmt::format("DELETE FROM {} AS t USING jsonb_populate_recordset(NULL::{}, $1::jsonb) AS k WHERE {}",
                     t.table.quoted(), t.table.quoted(), key_match(t, "t", "k", true));
}

std::string render_copy_out(const sql::QualifiedName& source, const std::vector<std::string>& source_columns,
                            const std::string& where) {
  std::string out = fmt::format("COPY (SELECT {} FROM {}", joined(source_columns, ""), source.quoted());
  if (!where.empty()) out += fmt::format(" WHERE ({})", where);
  return out + ") TO STDOUT";
}

CopyIn render_copy_in(const TargetShape& t, const std::string& staging, Compare compare) {
  CopyIn c;
  const auto s = sql::quote_ident(staging);
  // The staging table takes the target's column types, so COPY's text input is parsed exactly
  // as an INSERT into the target would parse it.
  c.create_staging = fmt::format("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA", s,
                                 joined(t.columns, ""), t.table.quoted());
  c.copy_in = fmt::format("COPY {} ({}) FROM STDIN", s, joined(t.columns, ""));
  c.copy_direct = fmt::format("COPY {} ({}) FROM STDIN", t.table.quoted(), joined(t.columns, ""));
  c.upsert = upsert_from(t, fmt::format("SELECT {} FROM {}", joined(t.columns, ""), s), compare);
  c.delete_missing = fmt::format("DELETE FROM {} AS t WHERE NOT EXISTS (SELECT 1 FROM {} AS s WHERE {})",
                                 t.table.quoted(), s, key_match(t, "s", "t"));
  c.drop_staging = fmt::format("DROP TABLE IF EXISTS {}", s);
  return c;
}

std::string render_table_locks(const std::vector<int>& table_ids, bool shared) {
  std::vector<int> ids = table_ids;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::string out = "SELECT ";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ", ";
    out += fmt::format("pg_advisory_xact_lock{}({}, {})", shared ? "_shared" : "", kTableLockClass, ids[i]);
  }
  return ids.empty() ? std::string() : out;
}

}  // namespace pgferry::apply
