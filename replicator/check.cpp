#include "check.hpp"

#include <fmt/format.h>

#include "migrate.hpp"
#include "setup.hpp"

namespace pgferry {
namespace {

void ok(const std::string& what) { fmt::print("  ok    {}\n", what); }
void fail(const std::string& what, const std::string& fix) {
  fmt::print("  FAIL  {}\n", what);
  if (!fix.empty()) fmt::print("        fix: {}\n", fix);
}

std::string names(const std::vector<std::string>& cols) {
  std::string out;
  for (const auto& c : cols) out += (out.empty() ? "" : ", ") + (sql::is_plain_identifier(c) ? c : sql::quote_ident(c));
  return out;
}

std::string mapping_text(const InspectedTable& t) {
  std::string out;
  for (const auto& m : t.resolved.columns) {
    if (!out.empty()) out += ", ";
    out += m.source == m.target ? m.source : m.source + "->" + m.target;
  }
  return out;
}

}  // namespace

int run_check(const Config& config) {
  Connected c;
  const int inspected = connect_and_inspect(config, c, false);
  if (!c.source || !c.target) return inspected;  // A connection failed; already reported.
  fmt::print("source: connected\ntarget: connected\n");

  int code = 0;
  auto worst = [&](int e) { code = (code == 2 || e == 2) ? 2 : std::max(code, e); };

  const auto source_version = installed_version(*c.source);
  const auto target_version = installed_version(*c.target);
  if (!source_version || !target_version) {
    print_error(!source_version ? source_version.error() : target_version.error());
    return 1;
  }
  for (const auto& [label, have, side] :
       {std::tuple{"source", *source_version, Side::Source}, std::tuple{"target", *target_version, Side::Target}}) {
    const int want = latest_version(side);
    if (have == want) {
      ok(fmt::format("{}: pgferry schema version {}", label, have));
    } else if (have == 0) {
      fail(fmt::format("{}: pgferry schema not installed", label), "run `pgferry setup`");
      worst(1);
      // Setup will need to create the schema: say now if it cannot.
      auto access = pgferry_schema_access(side == Side::Source ? *c.source : *c.target);
      if (!access) {
        print_error(access.error());
        return 1;
      }
      if (!access->schema_exists && !access->can_create) {
        fail(fmt::format("{}: this role may not create schema pgferry (no CREATE privilege on the database)", label),
             access->fix);
      }
    } else if (have < want) {
      fail(fmt::format("{}: pgferry schema is version {}, this pgferry expects {}", label, have, want),
           "run `pgferry setup` to upgrade it");
      worst(1);
    } else {
      fail(fmt::format("{}: pgferry schema is version {}, newer than this pgferry knows ({})", label, have, want),
           "run the pgferry version that set it up, or newer");
      worst(1);
    }
  }

  for (const auto& t : c.tables) {
    const auto& cfg = *t.config;
    fmt::print("{} -> {}\n", cfg.source.display(), cfg.target.display());
    if (t.source.info.exists && !t.source.info.primary_key.empty()) {
      ok(fmt::format("source table exists, primary key ({})", names(t.resolved.source_key)));
    }
    if (t.target.info.exists && t.resolved.problems.empty()) {
      ok(fmt::format("target table exists, keyed by ({})", names(t.resolved.target_key)));
    }
    for (const auto& p : t.resolved.problems) {
      fail(p.message, p.fix);
      worst(2);
    }
    if (!t.resolved.problems.empty()) continue;
    ok(fmt::format("columns compatible: {}", mapping_text(t)));
    for (const auto& n : t.resolved.notes) fmt::print("  note  {}\n", n);
    if (!cfg.where.empty()) ok(fmt::format("row filter parses: {}", cfg.where));
    for (const auto& p : t.privilege_problems) {
      fail(p.message, p.fix);
      worst(1);
    }
    if (t.privilege_problems.empty()) ok("privileges sufficient on both sides");
    if (*source_version == 0) {
      fail("capture not installed", "run `pgferry setup`");
      worst(1);
      continue;
    }
    auto st = capture_state(*c.source, t);
    if (!st) {
      print_error(st.error());
      return 1;
    }
    if (!st->registered) {
      fail("capture not installed on this table", "run `pgferry setup`");
      worst(1);
    } else if (!st->up_to_date) {
      fail("capture installed but out of date (configuration changed, or triggers dropped or disabled)",
           "run `pgferry setup`");
      worst(1);
    } else {
      ok(fmt::format("capture installed and up to date (table id {})", st->table_id));
    }
  }
  fmt::print("{}\n", code == 0 ? "ready" : "not ready");
  return code;
}

}  // namespace pgferry
