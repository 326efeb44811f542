#include "teardown.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <iostream>

#include "capture_sql.hpp"
#include "log.hpp"
#include "migrate.hpp"
#include "pg.hpp"
#include "setup.hpp"

namespace pgferry {
namespace {

bool confirm(const std::string& question) {
  if (isatty(STDIN_FILENO) == 0) return false;
  fmt::print("{} Type 'yes' to continue: ", question);
  (void)std::fflush(stdout);
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "yes";
}

}  // namespace

int run_teardown(const Config& config, const TeardownOptions& options) {
  auto source = Session::connect(config.source, "source", "pgferry");
  if (!source) {
    print_error(source.error());
    return 1;
  }
  auto& db = *source;
  auto access = pgferry_schema_access(db);
  if (!access) {
    print_error(access.error());
    return 1;
  }

  // Report what would be lost before asking.
  std::int64_t pending = 0;
  std::vector<std::pair<std::string, std::string>> per_table;
  if (access->schema_exists) {
    auto counts = db.exec(
        "SELECT coalesce(c.source_table, 'table id ' || j.table_id), count(*) FROM pgferry.journal j "
        "LEFT JOIN pgferry.captured_table c ON c.id = j.table_id GROUP BY 1 ORDER BY 1");
    if (counts) {
      for (int i = 0; i < PQntuples(counts->get()); ++i) {
        per_table.emplace_back(value(counts->get(), i, 0), value(counts->get(), i, 1));
        pending += std::atoll(value(counts->get(), i, 1).c_str());
      }
    }
  }
  std::optional<Session> target;
  bool target_schema = false;
  if (options.include_target) {
    auto t = Session::connect(config.target, "target", "pgferry");
    if (!t) {
      print_error(t.error());
      return 1;
    }
    target.emplace(std::move(*t));
    auto ta = pgferry_schema_access(*target);
    if (!ta) {
      print_error(ta.error());
      return 1;
    }
    target_schema = ta->schema_exists;
  }
  if (!access->schema_exists && !target_schema) {
    // Stray triggers are still possible if someone dropped the schema by hand without CASCADE.
    fmt::print("source: pgferry is not installed: nothing to remove\n");
    return 0;
  }
  if (access->schema_exists) {
    fmt::print("source: the journal holds {} unapplied change(s)\n", pending);
    for (const auto& [table, n] : per_table) {
      auto parsed = sql::parse_qualified_name(table);
      fmt::print("  {}: {}\n", parsed.ok() ? parsed->display() : table, n);
    }
  }
  const std::string what = fmt::format(
      "teardown removes pgferry's triggers and schema from the source{}, discarding {} unapplied change(s).",
      options.include_target ? " and its schema (sync_errors history included) from the target" : "", pending);
  if (!options.yes && !confirm(what)) {
    print_stderr("error: {}\n  fix: pass --yes to confirm (nothing was removed)\n", what);
    return 2;
  }

  if (access->schema_exists) {
    auto s = begin_setup_transaction(db, options.lock_timeout);
    // Another teardown may have removed everything while this one waited for the lock.
    bool still_there = true;
    if (s) {
      auto exists = db.scalar("SELECT to_regnamespace('pgferry') IS NOT NULL");
      if (exists) {
        still_there = *exists == "t";
      } else {
        s = std::move(exists).error();
      }
    }
    if (s && !still_there) {
      (void)db.run("ROLLBACK");
      fmt::print("source: pgferry was removed meanwhile (by another teardown): nothing left to remove\n");
    } else {
      // Every trigger that calls a pgferry function, registered or not.
      auto triggers = s ? db.exec(
                              "SELECT rn.nspname, r.relname, t.tgname FROM pg_trigger t "
                              "JOIN pg_class r ON r.oid = t.tgrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace "
                              "JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace "
                              "WHERE n.nspname = 'pgferry' AND NOT t.tgisinternal "
                              // Clones on partitions go with their parent's trigger.
                              "AND t.tgparentid = 0 ORDER BY 1, 2, 3")
                        : Result<PgResultPtr>(std::move(s).error());
      if (!triggers) {
        print_error(triggers.error());
        return 1;
      }
      std::vector<std::string> dropped;
      for (int i = 0; i < PQntuples(triggers->get()); ++i) {
        const sql::QualifiedName table{value(triggers->get(), i, 0), value(triggers->get(), i, 1)};
        const auto trigger = value(triggers->get(), i, 2);
        if (auto d = db.run(fmt::format("DROP TRIGGER {} ON {}", sql::quote_ident(trigger), table.quoted())); !d) {
          print_error(explain_lock_timeout(db, std::move(d).error(), options.lock_timeout));
          print_stderr("teardown rolled back: nothing was removed\n");
          return 1;
        }
        dropped.push_back(fmt::format("source: dropped trigger {} on {}", trigger, table.display()));
      }
      if (auto d = db.run("DROP SCHEMA pgferry CASCADE"); !d) {
        print_error(d.error());
        return 1;
      }
      if (auto d = db.run("COMMIT"); !d) {
        print_error(d.error());
        return 1;
      }
      for (const auto& line : dropped) fmt::print("{}\n", line);
      fmt::print("source: dropped schema pgferry ({} unapplied change(s) discarded)\n", pending);
    }
  }
  if (target && target_schema) {
    auto d = begin_setup_transaction(*target, options.lock_timeout);
    if (d) d = target->run("DROP SCHEMA IF EXISTS pgferry CASCADE");
    if (d) d = target->run("COMMIT");
    if (!d) {
      print_error(explain_lock_timeout(*target, std::move(d).error(), options.lock_timeout));
      return 1;
    }
    fmt::print("target: dropped schema pgferry\n");
  }
  fmt::print("teardown complete: application tables were not touched\n");
  return 0;
}

}  // namespace pgferry
