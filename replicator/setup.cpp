#include "setup.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <set>

#include "log.hpp"
#include "migrate.hpp"

namespace pgferry {

void print_error(const Error& e) { print_stderr("error: {}\n", e.describe()); }

capture::CaptureSpec capture_spec_for(const InspectedTable& table, std::int32_t table_id) {
  capture::CaptureSpec spec;
  spec.table_id = table_id;
  spec.table = table.config->source;
  spec.key_columns = table.resolved.source_key;
  for (const auto& m : table.resolved.columns) {
    for (const auto& c : table.source.info.columns) {
      if (c.name == m.source && capture::captured_as_text(c.base_type)) spec.text_columns.push_back(c.name);
    }
  }
  // to_jsonb(NEW) is the fast path; a column journaled as text needs the columns spelled out.
  if (!table.config->all_columns() || !spec.text_columns.empty()) {
    for (const auto& m : table.resolved.columns) spec.columns.push_back(m.source);
  }
  spec.where = table.config->where;
  spec.truncate = table.config->truncate;
  spec.set_based = table.source.info.plain && table.config->statement_inserts;
  return spec;
}

int connect_and_inspect(const Config& config, Connected& out, bool print_problems, bool tolerate_target_problems) {
  auto source = Session::connect(config.source, "source", "pgferry");
  if (!source) {
    print_error(source.error());
    return 1;
  }
  out.source.emplace(std::move(*source));
  auto target = Session::connect(config.target, "target", "pgferry");
  if (!target) {
    print_error(target.error());
    return 1;
  }
  out.target.emplace(std::move(*target));
  auto tables = inspect(*out.source, *out.target, config);
  if (!tables) {
    print_error(tables.error());
    return 1;
  }
  out.tables = std::move(*tables);
  int code = 0;
  for (const auto& t : out.tables) {
    if (tolerate_target_problems && t.resolved.target_only) continue;
    for (const auto& p : t.resolved.problems) {
      if (print_problems) print_stderr("error: {}\n  fix: {}\n", p.message, p.fix);
      code = 2;
    }
  }
  if (code != 0) return code;
  for (const auto& t : out.tables) {
    for (const auto& p : t.privilege_problems) {
      if (print_problems) print_stderr("error: {}\n  fix: {}\n", p.message, p.fix);
      code = 1;
    }
  }
  return code;
}

Result<CaptureState> capture_state(Session& source, const InspectedTable& table) {
  CaptureState st;
  auto reg = source.query("SELECT id, fingerprint, function_name FROM pgferry.captured_table WHERE source_table = $1",
                          {table.config->source.quoted()});
  if (!reg) return std::move(reg).error();
  if (PQntuples(reg->get()) == 0) return st;
  st.registered = true;
  st.table_id = std::atoi(value(reg->get(), 0, 0).c_str());
  const auto spec = capture_spec_for(table, st.table_id);
  const auto ddl = capture::render_capture(spec);
  if (value(reg->get(), 0, 1) != ddl.fingerprint || value(reg->get(), 0, 2) != ddl.function_name) return st;
  // The triggers may have been dropped or disabled by hand, or the table recreated.
  const auto names = capture::trigger_names(spec);
  auto trig = source.query(
      "SELECT count(*) FROM pg_trigger t "
      "WHERE t.tgrelid = $1::oid AND t.tgname = ANY ($2::text[]) AND t.tgenabled <> 'D' "
      "  AND t.tgfoid = to_regprocedure($3 || '()')",
      {table.source.oid, pg_array(names), ddl.function_name});
  if (!trig) return std::move(trig).error();
  st.up_to_date = value(trig->get(), 0, 0) == std::to_string(names.size());
  return st;
}

namespace {

Status begin_locked(Session& db, const SetupOptions& options) {
  return begin_setup_transaction(db, options.lock_timeout);
}

Status setup_target(Session& db, const Config& config, const SetupOptions& options) {
  if (auto s = begin_locked(db, options); !s) return s;
  auto applied = migrate(db, Side::Target);
  if (!applied) return std::move(applied).error();
  fmt::print("target: pgferry schema at version {}{}\n", latest_version(Side::Target),
             applied->empty() ? " (up to date)" : fmt::format(" (applied {} migration(s))", applied->size()));
  for (const auto& t : config.tables) {
    // A new target table needs a fresh copy, so it starts again from 'pending'.
    auto r = db.query(
        "INSERT INTO pgferry.table_state (source_table, target_table) VALUES ($1, $2) "
        "ON CONFLICT (source_table) DO UPDATE SET target_table = EXCLUDED.target_table, status = 'pending', "
        "  stop_reason = NULL, snapshot_started = NULL, snapshot_done = NULL, snapshot_rows = 0, snapshot_key = NULL, "
        "  updated_at = now() "
        "WHERE pgferry.table_state.target_table IS DISTINCT FROM EXCLUDED.target_table "
        "RETURNING (xmax = 0) AS inserted",
        {t.source.quoted(), t.target.quoted()});
    if (!r) return std::move(r).error();
    if (PQntuples(r->get()) == 1) {
      fmt::print("target: {} -> {}: {}\n", t.source.display(), t.target.display(),
                 is_true(r->get(), 0, 0) ? "registered (pending initial copy)" : "target changed, initial copy reset");
    }
  }
  // Quoted names contain double quotes; pass them as a JSON array to stay clear of array syntax.
  std::string json = "[";
  for (const auto& t : config.tables) {
    if (json.size() > 1) json += ",";
    json += "\"";
    for (char c : t.source.quoted()) {
      if (c == '"' || c == '\\') json += '\\';
      json += c;
    }
    json += "\"";
  }
  json += "]";
  auto removed = db.query(
      "DELETE FROM pgferry.table_state WHERE source_table NOT IN (SELECT jsonb_array_elements_text($1::jsonb)) "
      "RETURNING source_table",
      {json});
  if (!removed) return std::move(removed).error();
  for (int i = 0; i < PQntuples(removed->get()); ++i) {
    const auto name = value(removed->get(), i, 0);
    auto parsed = sql::parse_qualified_name(name);
    fmt::print("target: {} is no longer configured: forgot its state\n", parsed.ok() ? parsed->display() : name);
  }
  return db.run("COMMIT");
}

Status setup_source(Session& db, std::vector<InspectedTable>& tables, const SetupOptions& options, int* changed) {
  if (auto s = begin_locked(db, options); !s) return s;
  auto applied = migrate(db, Side::Source);
  if (!applied) return std::move(applied).error();
  *changed += static_cast<int>(applied->size());
  fmt::print("source: pgferry schema at version {}{}\n", latest_version(Side::Source),
             applied->empty() ? " (up to date)" : fmt::format(" (applied {} migration(s))", applied->size()));

  std::set<std::string> configured;
  for (auto& t : tables) {
    const auto name = t.config->source.quoted();
    configured.insert(name);
    auto st = capture_state(db, t);
    if (!st) return std::move(st).error();
    if (st->up_to_date) {
      fmt::print("source: {}: capture up to date\n", t.config->source.display());
      continue;
    }
    std::int32_t id = st->table_id;
    if (!st->registered) {
      auto r = db.scalar(
          "INSERT INTO pgferry.captured_table (source_table, relid, function_name, fingerprint, pgferry_version) "
          "VALUES ($1, $2::oid, '', '', $3) RETURNING id",
          {name, t.source.oid, std::string(PGFERRY_VERSION)});
      if (!r) return std::move(r).error();
      id = std::atoi(r->c_str());
    }
    const auto ddl = capture::render_capture(capture_spec_for(t, id));
    for (const auto& stmt : ddl.statements) {
      if (auto s = db.run(stmt); !s) {
        auto e = explain_lock_timeout(db, std::move(s).error(), options.lock_timeout);
        e.message = fmt::format("installing capture on {}: {}", t.config->source.display(), e.message);
        return e;
      }
    }
    if (auto s = db.query(
            "UPDATE pgferry.captured_table SET relid = $2::oid, function_name = $3, fingerprint = $4, "
            "installed_at = now(), pgferry_version = $5 WHERE id = $1",
            {std::to_string(id), t.source.oid, ddl.function_name, ddl.fingerprint, std::string(PGFERRY_VERSION)});
        !s) {
      return std::move(s).error();
    }
    ++*changed;
    fmt::print("source: {}: capture {} (table id {})\n", t.config->source.display(),
               st->registered ? "reinstalled: configuration changed" : "installed", id);
  }

  // Tables captured before but no longer configured: say so, then remove their capture and the
  // changes still waiting for them (nothing would ever apply them).
  auto old = db.exec(
      "SELECT c.id, c.source_table, c.function_name, to_regclass(c.source_table) IS NOT NULL, "
      "       (SELECT count(*) FROM pgferry.journal j WHERE j.table_id = c.id) "
      "FROM pgferry.captured_table c ORDER BY c.id");
  if (!old) return std::move(old).error();
  for (int i = 0; i < PQntuples(old->get()); ++i) {
    const auto name = value(old->get(), i, 1);
    if (configured.contains(name)) continue;
    auto parsed = sql::parse_qualified_name(name);
    const auto pending = value(old->get(), i, 4);
    fmt::print("source: {} is no longer configured: removing its capture and {} unapplied journal row(s)\n",
               parsed.ok() ? parsed->display() : name, pending);
    const auto fn = value(old->get(), i, 2);
    const bool exists = is_true(old->get(), i, 3) && parsed.ok();
    for (const auto& stmt : capture::render_drop_capture(parsed.ok() ? *parsed : sql::QualifiedName{},
                                                         fn.empty() ? "pgferry.none" : fn, exists)) {
      if (auto s = db.run(stmt); !s) return explain_lock_timeout(db, std::move(s).error(), options.lock_timeout);
    }
    const auto id = value(old->get(), i, 0);
    if (auto s = db.query("DELETE FROM pgferry.journal WHERE table_id = $1", {id}); !s) return std::move(s).error();
    if (auto s = db.query("DELETE FROM pgferry.captured_table WHERE id = $1", {id}); !s) return std::move(s).error();
    ++*changed;
  }
  return db.run("COMMIT");
}

}  // namespace

int run_setup(const Config& config, const SetupOptions& options) {
  Connected c;
  if (int code = connect_and_inspect(config, c, true); code != 0) {
    print_stderr("setup changed nothing: fix the problems above, then run it again\n");
    return code;
  }
  for (auto* db : {&*c.source, &*c.target}) {
    auto access = pgferry_schema_access(*db);
    if (!access) {
      print_error(access.error());
      return 1;
    }
    if (!access->schema_exists && !access->can_create) {
      print_error(runtime_error(db->label() + " database", "this role may not create schema pgferry", access->fix));
      return 1;
    }
  }
  // The target first: if it fails, the source is left untouched and no journal piles up.
  if (auto s = setup_target(*c.target, config, options); !s) {
    print_error(s.error());
    return 1;
  }
  int changed = 0;
  if (auto s = setup_source(*c.source, c.tables, options, &changed); !s) {
    print_error(s.error());
    print_stderr("setup rolled back on the source: no capture was changed there\n");
    return 1;
  }
  fmt::print("setup complete: {} table(s) captured{}\n", c.tables.size(), changed == 0 ? ", nothing to change" : "");
  return 0;
}

}  // namespace pgferry
