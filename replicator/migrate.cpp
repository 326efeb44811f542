#include "migrate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>

#include "assets.hpp"
#include "capture_sql.hpp"
#include "config.hpp"

namespace pgferry {
namespace {

std::vector<Migration> collect(std::string_view dir) {
  std::vector<Migration> out;
  for (const auto& a : assets::all()) {
    if (a.path.rfind(dir, 0) != 0) continue;
    const auto file = a.path.substr(dir.size());
    const auto underscore = file.find('_');
    Migration m;
    m.version = std::atoi(std::string(file.substr(0, underscore)).c_str());
    m.name = std::string(file.substr(underscore + 1, file.size() - underscore - 1 - 4));  // drop ".sql"
    m.sql = a.text;
    // A malformed name is a build mistake, caught by the unit tests.
    assert(m.version > 0 && underscore != std::string_view::npos);
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const Migration& a, const Migration& b) { return a.version < b.version; });
  return out;
}

}  // namespace

const std::vector<Migration>& migrations_for(Side side) {
  static const auto source = collect("migrations/source/");
  static const auto target = collect("migrations/target/");
  return side == Side::Source ? source : target;
}

int latest_version(Side side) {
  const auto& all = migrations_for(side);
  return all.empty() ? 0 : all.back().version;
}

Result<int> installed_version(Session& db) {
  auto exists = db.scalar("SELECT to_regclass('pgferry.schema_version') IS NOT NULL");
  if (!exists) return std::move(exists).error();
  if (*exists != "t") return 0;
  auto v = db.scalar("SELECT coalesce(max(version), 0) FROM pgferry.schema_version");
  if (!v) return std::move(v).error();
  return std::atoi(v->c_str());
}

Status lock_for_setup(Session& db) {
  return db.run(fmt::format("SELECT pg_advisory_xact_lock({}, {})", capture::kLockClass, capture::kSetupLock));
}

Status begin_setup_transaction(Session& db, std::chrono::milliseconds lock_timeout) {
  assert(lock_timeout.count() > 0);  // 0 would mean "wait forever" to PostgreSQL.
  if (auto s = db.run("BEGIN"); !s) return s;
  if (auto s = db.run(fmt::format("SET LOCAL lock_timeout = '{}ms'", lock_timeout.count())); !s) return s;
  auto s = lock_for_setup(db);
  if (!s && db.last_sqlstate() == "55P03") {
    auto e = std::move(s).error();
    e.message = "another pgferry setup or teardown is working on this database (its lock is held)";
    e.fix = fmt::format("wait for it to finish and run this again, or retry with a --lock-timeout longer than {}",
                        format_duration(lock_timeout));
    return e;
  }
  return s;
}

Error explain_lock_timeout(Session& db, Error e, std::chrono::milliseconds lock_timeout) {
  if (db.last_sqlstate() == "55P03") {
    e.fix = fmt::format(
        "a long-running transaction holds a lock on a configured table (waited {}); finish it, or "
        "retry with a longer --lock-timeout",
        format_duration(lock_timeout));
  }
  return e;
}

Result<std::vector<int>> migrate(Session& db, Side side) {
  // CREATE SCHEMA IF NOT EXISTS still demands CREATE on the database, so a schema an
  // administrator created beforehand (owned by pgferry's role) is only created when missing.
  auto missing = db.scalar("SELECT to_regnamespace('pgferry') IS NULL");
  if (!missing) return std::move(missing).error();
  if (*missing == "t") {
    if (auto s = db.run("CREATE SCHEMA pgferry"); !s) return std::move(s).error();
  }
  if (auto s = db.run("CREATE TABLE IF NOT EXISTS pgferry.schema_version ("
                      "  version integer PRIMARY KEY,"
                      "  name text NOT NULL,"
                      "  applied_at timestamptz NOT NULL DEFAULT now(),"
                      "  pgferry_version text NOT NULL)");
      !s) {
    return std::move(s).error();
  }
  auto have = installed_version(db);
  if (!have) return std::move(have).error();
  const int latest = latest_version(side);
  if (*have > latest) {
    return runtime_error(db.label() + " database",
                         fmt::format("pgferry's schema there is version {}, but this pgferry ({}) knows only up to "
                                     "version {}",
                                     *have, PGFERRY_VERSION, latest),
                         "run a pgferry at least as new as the one that last ran setup");
  }
  std::vector<int> applied;
  for (const auto& m : migrations_for(side)) {
    if (m.version <= *have) continue;
    if (auto s = db.run(m.sql); !s) {
      auto e = std::move(s).error();
      e.message = fmt::format("migration {} ({}) failed: {}", m.version, m.name, e.message);
      return e;
    }
    if (auto s = db.query("INSERT INTO pgferry.schema_version (version, name, pgferry_version) VALUES ($1, $2, $3)",
                          {std::to_string(m.version), m.name, std::string(PGFERRY_VERSION)});
        !s) {
      return std::move(s).error();
    }
    applied.push_back(m.version);
  }
  return applied;
}

}  // namespace pgferry
