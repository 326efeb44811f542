#include "catalog.hpp"

#include <fmt/format.h>

namespace pgferry {

Result<CatalogTable> load_table(Session& db, const sql::QualifiedName& name) {
  CatalogTable out;
  auto oid = db.query(
      "SELECT c.oid, c.relkind = 'r' AND NOT c.relispartition "
      "       AND NOT EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid) "
      "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
      {name.schema, name.name});
  if (!oid) return std::move(oid).error();
  if (PQntuples(oid->get()) == 0) return out;
  out.oid = value(oid->get(), 0, 0);
  out.info.exists = true;
  out.info.plain = is_true(oid->get(), 0, 1);

  auto cols = db.query(
      "SELECT a.attname, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, NULL), t.typcategory, "
      "       a.attnotnull, a.atthasdef OR a.attidentity <> '', a.attgenerated <> '' "
      "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
      "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
      {out.oid});
  if (!cols) return std::move(cols).error();
  for (int i = 0; i < PQntuples(cols->get()); ++i) {
    ColumnInfo c;
    c.name = value(cols->get(), i, 0);
    c.type = value(cols->get(), i, 1);
    c.base_type = value(cols->get(), i, 2);
    const auto cat = value(cols->get(), i, 3);
    c.category = cat.empty() ? 'U' : cat[0];
    c.not_null = is_true(cols->get(), i, 4);
    c.has_default = is_true(cols->get(), i, 5);
    c.generated = is_true(cols->get(), i, 6);
    out.info.columns.push_back(std::move(c));
  }

  auto labels = db.query(
      "SELECT a.attname, e.enumlabel FROM pg_attribute a JOIN pg_enum e ON e.enumtypid = a.atttypid "
      "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum, e.enumsortorder",
      {out.oid});
  if (!labels) return std::move(labels).error();
  for (int i = 0; i < PQntuples(labels->get()); ++i) {
    for (auto& c : out.info.columns) {
      if (c.name == value(labels->get(), i, 0)) c.enum_labels.push_back(value(labels->get(), i, 1));
    }
  }

  // Primary key and usable unique keys (no expressions, no predicate, not deferrable), in key order.
  auto keys = db.query(
      "SELECT i.indexrelid, i.indisprimary, a.attname "
      "FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
      "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
      "WHERE i.indrelid = $1::oid AND i.indisunique AND i.indimmediate AND i.indpred IS NULL "
      "  AND i.indexprs IS NULL AND i.indisvalid "
      "ORDER BY i.indisprimary DESC, i.indexrelid, k.ord",
      {out.oid});
  if (!keys) return std::move(keys).error();
  std::string current;
  for (int i = 0; i < PQntuples(keys->get()); ++i) {
    const auto idx = value(keys->get(), i, 0);
    const bool primary = is_true(keys->get(), i, 1);
    if (primary) {
      out.info.primary_key.push_back(value(keys->get(), i, 2));
      continue;
    }
    if (idx != current) {
      out.info.unique_keys.emplace_back();
      current = idx;
    }
    out.info.unique_keys.back().push_back(value(keys->get(), i, 2));
  }
  return out;
}

Result<std::vector<std::string>> missing_table_privileges(Session& db, const std::string& oid,
                                                          const std::vector<std::string>& wanted) {
  std::vector<std::string> missing;
  for (const auto& p : wanted) {
    auto has = db.scalar("SELECT has_table_privilege($1::oid, $2)", {oid, p});
    if (!has) return std::move(has).error();
    if (*has != "t") missing.push_back(p);
  }
  return missing;
}

Result<SchemaAccess> pgferry_schema_access(Session& db) {
  auto r = db.exec(
      "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pgferry'), "
      "       has_database_privilege(current_database(), 'CREATE'), "
      "       quote_ident(current_database()), quote_ident(current_user)");
  if (!r) return std::move(r).error();
  return SchemaAccess{is_true(r->get(), 0, 0), is_true(r->get(), 0, 1),
                      fmt::format("GRANT CREATE ON DATABASE {} TO {}; or let a superuser run CREATE SCHEMA pgferry "
                                  "AUTHORIZATION {} there",
                                  value(r->get(), 0, 2), value(r->get(), 0, 3), value(r->get(), 0, 3))};
}

namespace {

// Lets the source parse and plan the row filter, so a typo is reported by `check`/`setup` and
// not by the first write after setup. EXPLAIN through the extended protocol takes exactly one
// statement, so the filter cannot smuggle in another.
std::optional<Problem> check_filter(Session& source, const TableConfig& t) {
  if (t.where.empty()) return std::nullopt;
  // The capture function runs with search_path pinned to pg_catalog; parse the filter the same way.
  auto pinned = source.run("SELECT set_config('search_path', 'pg_catalog, pg_temp', false)");
  auto r = source.query(fmt::format("EXPLAIN SELECT 1 FROM {} WHERE ({})", t.source.quoted(), t.where), {});
  auto reset = source.run("RESET search_path");
  if (!pinned || !reset) return Problem{"could not set search_path to check the row filter", ""};
  if (r) return std::nullopt;
  return Problem{fmt::format("{}.where: the row filter \"{}\" is not valid on source table {}: {}", t.origin, t.where,
                             t.source.display(), r.error().message),
                 "write one SQL boolean expression over the table's own columns, e.g. status = 'active'"};
}

}  // namespace

Result<std::vector<InspectedTable>> inspect(Session& source, Session& target, const Config& config) {
  std::map<std::pair<std::string, std::string>, bool> cast_cache;
  AssignmentCastCheck has_cast = [&](const std::string& from, const std::string& to) {
    auto key = std::pair{from, to};
    if (auto it = cast_cache.find(key); it != cast_cache.end()) return it->second;
    // The source type is looked up by name on the target; a type the target does not have
    // (a source-only enum or domain) has no cast.
    auto r = target.scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_cast WHERE castsource = to_regtype($1) AND casttarget = to_regtype($2) "
        "AND castcontext IN ('a', 'i')) OR (to_regtype($1) IS NOT NULL AND to_regtype($2) IS NOT NULL AND "
        "EXISTS (SELECT 1 FROM pg_type s, pg_type d WHERE s.oid = to_regtype($1) AND d.oid = to_regtype($2) "
        "AND s.typbasetype = d.oid))",
        {from, to});
    const bool ok = r && *r == "t";
    cast_cache[key] = ok;
    return ok;
  };

  // Fixes name the role pgferry actually connects as, so they can be pasted as they are.
  auto source_role = source.scalar("SELECT quote_ident(current_user)");
  if (!source_role) return std::move(source_role).error();
  auto target_role = target.scalar("SELECT quote_ident(current_user)");
  if (!target_role) return std::move(target_role).error();

  std::vector<InspectedTable> out;
  for (const auto& t : config.tables) {
    InspectedTable it;
    it.config = &t;
    auto s = load_table(source, t.source);
    if (!s) return std::move(s).error();
    it.source = std::move(*s);
    auto d = load_table(target, t.target);
    if (!d) return std::move(d).error();
    it.target = std::move(*d);
    it.resolved = resolve_table(t, it.source.info, it.target.info, has_cast);
    if (it.source.info.exists) {
      if (auto p = check_filter(source, t)) it.resolved.problems.push_back(std::move(*p));
      // CREATE TRIGGER needs only TRIGGER, but DROP TRIGGER (reconfiguring, removing a table,
      // teardown) is reserved to the table's owner: require membership in the owner role up
      // front rather than fail on the first configuration change.
      auto owner = source.query(
          "SELECT pg_has_role(c.relowner, 'USAGE'), quote_ident(pg_get_userbyid(c.relowner)) FROM pg_class c "
          "WHERE c.oid = $1::oid",
          {it.source.oid});
      if (!owner) return std::move(owner).error();
      if (PQntuples(owner->get()) == 1 && !is_true(owner->get(), 0, 0)) {
        const auto owner_role = value(owner->get(), 0, 1);
        it.privilege_problems.push_back(
            {fmt::format("the source role is not the owner of {} (nor a member of its owner, {}): PostgreSQL lets "
                         "only the owner drop the capture triggers, which setup does when the configuration "
                         "changes and teardown does at the end",
                         t.source.display(), owner_role),
             fmt::format("GRANT {} TO {}", owner_role, *source_role)});
      }
      auto miss = missing_table_privileges(source, it.source.oid, {"SELECT", "TRIGGER"});
      if (!miss) return std::move(miss).error();
      for (const auto& m : *miss) {
        it.privilege_problems.push_back(
            {fmt::format("the source role lacks the {} privilege on {}", m, t.source.display()),
             fmt::format("GRANT {} ON {} TO {}", m, t.source.quoted(), *source_role)});
      }
    }
    if (it.target.info.exists) {
      std::vector<std::string> wanted = {"SELECT", "INSERT", "UPDATE", "DELETE"};
      if (t.truncate) wanted.emplace_back("TRUNCATE");
      auto miss = missing_table_privileges(target, it.target.oid, wanted);
      if (!miss) return std::move(miss).error();
      for (const auto& m : *miss) {
        it.privilege_problems.push_back(
            {fmt::format("the target role lacks the {} privilege on {}", m, t.target.display()),
             fmt::format("GRANT {} ON {} TO {}", m, t.target.quoted(), *target_role)});
      }
    }
    out.push_back(std::move(it));
  }
  return out;
}

}  // namespace pgferry
