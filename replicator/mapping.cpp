#include "mapping.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace pgferry {

const ColumnInfo* TableInfo::column(const std::string& name) const {
  for (const auto& c : columns) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

namespace {

std::string list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names)
    out += (out.empty() ? "" : ", ") + (sql::is_plain_identifier(n) ? n : sql::quote_ident(n));
  return out;
}

std::string col(const sql::QualifiedName& t, const std::string& c) {
  return t.display() + "." + (sql::is_plain_identifier(c) ? c : sql::quote_ident(c));
}

// Whether every value of `src` can be written into `dst`; explains why not in `why`.
bool compatible(const ColumnInfo& src, const ColumnInfo& dst, const AssignmentCastCheck& cast, std::string* why) {
  if (src.base_type == dst.base_type) {
    if (!src.enum_labels.empty()) {
      std::set<std::string> have(dst.enum_labels.begin(), dst.enum_labels.end());
      std::vector<std::string> missing;
      for (const auto& l : src.enum_labels) {
        if (!have.contains(l)) missing.push_back(l);
      }
      if (!missing.empty()) {
        *why = fmt::format("the target enum lacks the label(s) {}", list(missing));
        return false;
      }
    }
    return true;
  }
  // Every value has a text form, and the applier writes through it.
  if (dst.category == 'S') return true;
  if (cast && cast(src.base_type, dst.base_type)) return true;
  *why = fmt::format("PostgreSQL has no assignment cast from {} to {}", src.base_type, dst.base_type);
  return false;
}

ResolvedTable resolve(const TableConfig& table, const TableInfo& source, const TableInfo& target,
                      const AssignmentCastCheck& has_assignment_cast) {
  ResolvedTable r;
  const auto& sname = table.source;
  const auto& tname = table.target;
  if (!source.exists) {
    r.problems.push_back({fmt::format("source table {} does not exist (or this role cannot see it)", sname.display()),
                          "create it, or fix the name in 'name:' (unquoted names are lower-cased; quote mixed case)"});
  }
  const Problem target_missing{
      fmt::format("target table {} does not exist (or this role cannot see it)", tname.display()),
      "create it on the target with the replicated columns and the same primary key; pgferry does not create "
      "application tables"};
  if (!source.exists) {
    if (!target.exists) r.problems.push_back(target_missing);
    return r;
  }

  if (source.primary_key.empty()) {
    r.problems.push_back(
        {fmt::format("source table {} has no primary key", sname.display()),
         fmt::format("add one (ALTER TABLE {} ADD PRIMARY KEY (...)); pgferry identifies rows by it", sname.quoted())});
    return r;
  }
  r.source_key = source.primary_key;

  // Which columns go where.
  if (table.all_columns()) {
    for (const auto& c : source.columns) r.columns.push_back({c.name, c.name});
  } else {
    r.columns = table.columns;
  }
  std::vector<std::string> missing_src, missing_dst;
  for (const auto& m : r.columns) {
    if (source.column(m.source) == nullptr) missing_src.push_back(m.source);
    if (target.exists && target.column(m.target) == nullptr) missing_dst.push_back(m.target);
  }
  const auto missing_on_target = [&] {
    return Problem{
        fmt::format("target table {} is missing column(s) {}", tname.display(), list(missing_dst)),
        table.all_columns()
            ? std::string("add them to the target table, or list only the columns to replicate in 'columns:'")
            : std::string("add them to the target table, or map to existing columns in 'columns:'")};
  };
  if (!missing_src.empty()) {
    r.problems.push_back(
        {fmt::format("column(s) {} do not exist on the source table {}", list(missing_src), sname.display()),
         "fix 'columns:' to name existing source columns"});
    if (!target.exists) r.problems.push_back(target_missing);
    if (!missing_dst.empty()) r.problems.push_back(missing_on_target());
    return r;
  }
  // The key must be replicated and must identify rows on the target too.
  for (const auto& k : source.primary_key) {
    auto it = std::find_if(r.columns.begin(), r.columns.end(), [&](const ColumnMapping& m) { return m.source == k; });
    if (it == r.columns.end()) {
      r.problems.push_back({fmt::format("primary key column {} is not in 'columns:'", col(sname, k)),
                            "add it: pgferry identifies rows on the target by the source's primary key"});
      if (!target.exists) r.problems.push_back(target_missing);
      return r;
    }
    r.target_key.push_back(it->target);
  }
  // From here on every problem is the target's, except a missing updated_at column.
  if (table.updated_at && source.column(*table.updated_at) == nullptr) {
    r.problems.push_back(
        {fmt::format("updated_at column {} does not exist on the source", col(sname, *table.updated_at)),
         "name the source column that records each row's last change, or remove 'updated_at:'"});
  }
  const bool source_ok = r.problems.empty();
  if (!target.exists) {
    r.problems.push_back(target_missing);
    r.target_only = source_ok;
    return r;
  }
  if (!missing_dst.empty()) {
    r.problems.push_back(missing_on_target());
    r.target_only = source_ok;
    return r;
  }
  const std::set<std::string> want(r.target_key.begin(), r.target_key.end());
  bool keyed = std::set<std::string>(target.primary_key.begin(), target.primary_key.end()) == want;
  for (const auto& u : target.unique_keys) keyed = keyed || std::set<std::string>(u.begin(), u.end()) == want;
  if (!keyed) {
    r.problems.push_back(
        {fmt::format("target table {} has no primary key or unique index on ({}), the columns the source key {} maps "
                     "to",
                     tname.display(), list(r.target_key), list(r.source_key)),
         fmt::format("ALTER TABLE {} ADD PRIMARY KEY ({})", tname.quoted(), sql::quote_ident_list(r.target_key))});
  }

  for (const auto& m : r.columns) {
    const auto& s = *source.column(m.source);
    const auto& t = *target.column(m.target);
    std::string why;
    if (!compatible(s, t, has_assignment_cast, &why)) {
      r.problems.push_back({fmt::format("source column {} is {} but target column {} is {}: {}", col(sname, m.source),
                                        s.type, col(tname, m.target), t.type, why),
                            "change the target column's type, or leave the column out of 'columns:'"});
    } else if (s.type != t.type && t.category != 'S' && s.base_type != t.base_type) {
      r.notes.push_back(fmt::format("{} ({}) is written to {} ({}) by assignment cast", col(sname, m.source), s.type,
                                    col(tname, m.target), t.type));
    }
    if (t.generated) {
      r.problems.push_back(
          {fmt::format("target column {} is a generated column and cannot be written", col(tname, m.target)),
           "leave it out of 'columns:'"});
    }
  }
  for (const auto& t : target.columns) {
    const bool written =
        std::any_of(r.columns.begin(), r.columns.end(), [&](const ColumnMapping& m) { return m.target == t.name; });
    if (!written && t.not_null && !t.has_default) {
      r.problems.push_back(
          {fmt::format("target column {} is NOT NULL without a default, and nothing replicates into it",
                       col(tname, t.name)),
           "give it a default, allow NULL, or map a source column to it in 'columns:'"});
    }
  }
  r.target_only = source_ok && !r.problems.empty();
  return r;
}

}  // namespace

ResolvedTable resolve_table(const TableConfig& table, const TableInfo& source, const TableInfo& target,
                            const AssignmentCastCheck& has_assignment_cast) {
  ResolvedTable r = resolve(table, source, target, has_assignment_cast);
  // Every problem names where the table is configured ("pgferry.yaml:5: tables[0]"), so the
  // user knows which entry to fix.
  if (!table.origin.empty()) {
    for (auto& p : r.problems) p.message = fmt::format("{}: {}", table.origin, p.message);
  }
  return r;
}

}  // namespace pgferry
