#include "capture_sql.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string_view>

#include "assets.hpp"

namespace pgferry::capture {
namespace {

// jsonb_build_object takes at most 100 arguments, so wide tables are built 50 pairs at a time.
constexpr size_t kPairsPerCall = 50;

std::string_view capture_template() {
  for (const auto& a : assets::all()) {
    if (a.path == "triggers/capture.sql") return a.text;
  }
  // The template is compiled in; its absence is a build error, not a runtime condition.
  assert(false && "triggers/capture.sql is not embedded");
  return {};
}

std::string replace_all(std::string text, std::string_view what, std::string_view with) {
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + with.size())) {
    text.replace(pos, what.size(), with);
  }
  return text;
}

// jsonb_build_object('a', REC."a", ...) for `columns` of the row variable `rec` (NEW or OLD);
// the columns in `as_text` are given as REC."a"::text. Schema-qualified throughout, like all
// SQL the capture function runs: it runs under the writer's search_path (triggers/capture.sql).
std::string json_object(const std::vector<std::string>& columns, std::string_view rec,
                        const std::vector<std::string>& as_text = {}) {
  std::string out;
  for (size_t start = 0; start < columns.size(); start += kPairsPerCall) {
    if (!out.empty()) out += " OPERATOR(pg_catalog.||) ";
    out += "pg_catalog.jsonb_build_object(";
    for (size_t i = start; i < columns.size() && i < start + kPairsPerCall; ++i) {
      if (i != start) out += ", ";
      const bool text = std::find(as_text.begin(), as_text.end(), columns[i]) != as_text.end();
      out += fmt::format("{}, {}.{}{}", sql::quote_literal(columns[i]), rec, sql::quote_ident(columns[i]),
                         text ? "::pg_catalog.text" : "");
    }
    out += ")";
  }
  return out;
}

// ROW(REC."a", REC."b")::pg_catalog.record for `columns` of `rec`. The cast makes it one record
// value: between two bare ROW(...) constructors an operator applies column by column.
std::string row_of(const std::vector<std::string>& columns, std::string_view rec) {
  std::string out = "ROW(";
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i != 0) out += ", ";
    out += fmt::format("{}.{}", rec, sql::quote_ident(columns[i]));
  }
  return out + ")::pg_catalog.record";
}

// Whether the binary images of two records differ (record_image_ne). It needs no equality
// operator (json, point have none) and sees every change the text forms would (numeric 1.0 ->
// 1.00, citext 'A' -> 'a'), without calling any type's output function; values stored TOASTed
// or compressed are compared detoasted.
std::string images_differ(std::string_view a, std::string_view b) {
  return fmt::format("{} OPERATOR(pg_catalog.*<>) {}", a, b);
}

// The template with its `name` sections resolved: each span from {{#name}} to {{/name}} is kept
// (without its marks) when `keep`, else dropped. Sections do not nest.
std::string resolve_sections(std::string_view tmpl, std::string_view name, bool keep) {
  const std::string opening = fmt::format("{{{{#{}}}}}", name);
  const std::string closing = fmt::format("{{{{/{}}}}}", name);
  std::string out;
  size_t pos = 0;
  for (size_t open = tmpl.find(opening); open != std::string_view::npos; open = tmpl.find(opening, pos)) {
    const auto body = open + opening.size();
    const auto close = tmpl.find(closing, body);
    // The template is compiled in; an unclosed section is a build error, not a runtime condition.
    assert(close != std::string_view::npos && "unclosed section in triggers/capture.sql");
    out.append(tmpl.substr(pos, open - pos));
    if (keep) out.append(tmpl.substr(body, close - body));
    pos = close + closing.size();
  }
  out.append(tmpl.substr(pos));
  return out;
}

// Whether `rec` passes the filter. The filter names bare columns, so it is evaluated over a
// one-row subquery of the row variable; NULL counts as "not in the filter".
std::string in_filter(const std::string& where, std::string_view rec) {
  if (where.empty()) return "true";
  return fmt::format("COALESCE((SELECT ({}) FROM (SELECT {}.*) AS pgferry_row), false)", where, rec);
}

/// One trigger capture may put on a table; `wanted` says whether `spec` needs it. `events` is
/// what fires it ("AFTER INSERT"), `rest` what comes between the table and EXECUTE.
struct Trigger {
  const char* name;
  bool wanted;
  std::string events;
  std::string rest;
};

/// Every trigger capture may put on a table, in install order: the one list render_capture,
/// trigger_names and render_drop_capture all read.
std::vector<Trigger> triggers_for(const CaptureSpec& spec) {
  return {
      {kRowTrigger, true, spec.set_based ? "AFTER UPDATE OR DELETE" : "AFTER INSERT OR UPDATE OR DELETE",
       "FOR EACH ROW"},
      {kInsertTrigger, spec.set_based, "AFTER INSERT",
       fmt::format("REFERENCING NEW TABLE AS {} FOR EACH STATEMENT", sql::quote_ident(kInsertedRows))},
      // The guard never fires; it is there to be refused. A row trigger with a transition table
      // cannot be on a partition or an inheritance child, so ATTACH PARTITION and INHERIT fail
      // naming it, instead of routing rows written through a parent past the statement trigger.
      {kGuardTrigger, spec.set_based, "AFTER INSERT",
       fmt::format("REFERENCING NEW TABLE AS {} FOR EACH ROW WHEN (false)", sql::quote_ident(kGuardedRows))},
      {kTruncateTrigger, spec.truncate, "AFTER TRUNCATE", "FOR EACH STATEMENT"},
  };
}

}  // namespace

bool captured_as_text(std::string_view base_type) { return base_type == "json" || base_type == "jsonb"; }

std::string function_name_for(std::int32_t table_id) { return fmt::format("capture_{}", table_id); }

std::string fingerprint_of(const std::vector<std::string>& parts) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const auto& p : parts) {
    for (unsigned char c : p) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;  // Separator, so ["ab","c"] and ["a","bc"] differ.
    h *= 1099511628211ULL;
  }
  return fmt::format("{:016x}", h);
}

std::string image_expression(const CaptureSpec& spec, std::string_view rec) {
  if (spec.columns.empty()) return fmt::format("pg_catalog.to_jsonb({})", rec);
  return json_object(spec.columns, rec, spec.text_columns);
}

std::string key_expression(const CaptureSpec& spec, std::string_view rec) {
  return json_object(spec.key_columns, rec, spec.text_columns);
}

std::string filter_expression(const CaptureSpec& spec, std::string_view rec) { return in_filter(spec.where, rec); }

CaptureDdl render_capture(const CaptureSpec& spec) {
  assert(!spec.key_columns.empty());
  CaptureDdl ddl;
  ddl.function_name = "pgferry." + sql::quote_ident(function_name_for(spec.table_id));

  // Every value is computed first and substituted in one pass over the template, so text inside a
  // value (a column named "{{new_image}}") is never substituted again.
  std::map<std::string, std::string, std::less<>> values = {
      {"function", ddl.function_name},
      {"table_id", std::to_string(spec.table_id)},
      {"listen_lock", fmt::format("{}, {}", kLockClass, kListenLock)},
      {"old_in", filter_expression(spec, "OLD")},
      {"new_in", filter_expression(spec, "NEW")},
      {"old_key", key_expression(spec, "OLD")},
      // Images, not equality: the replicator identifies a row by the text of its key, so a key
      // updated to an equal but differently written value (numeric 1 -> 1.00, citext 'A' -> 'a')
      // must journal the old key, or the row would be known under two keys. (An old key that
      // differs only in its binary form is journaled too, and dropped by the reader as equal.)
      {"key_changed", images_differ(row_of(spec.key_columns, "NEW"), row_of(spec.key_columns, "OLD"))},
  };
  // The set-based INSERT, over the transition table's rows.
  values["new_rows"] = sql::quote_ident(kInsertedRows);
  values["set_new_in"] = filter_expression(spec, "pgferry_new");
  values["set_new_image"] = image_expression(spec, "pgferry_new");
  values["new_image"] = image_expression(spec, "NEW");
  // Comparing images catches every visible change, including types without an equality operator
  // (json, point) and changes equality ignores (1.0 -> 1.00).
  values["row_changed"] = spec.columns.empty()
                              ? images_differ("NEW", "OLD")
                              : images_differ(row_of(spec.columns, "NEW"), row_of(spec.columns, "OLD"));
  // The body is dollar-quoted. Identifiers may contain '$', so a column named
  // 'x$pgferry_capture$ ...' could end the quote early: pick a tag no value contains.
  std::string tag = "$pgferry_capture$";
  for (int n = 1; std::any_of(values.begin(), values.end(),
                              [&](const auto& kv) { return kv.second.find(tag) != std::string::npos; });
       ++n) {
    tag = fmt::format("$pgferry_capture_{}$", n);
  }
  const std::string tmpl =
      replace_all(resolve_sections(capture_template(), "filtered", !spec.where.empty()), "$pgferry_capture$", tag);
  std::string fn;
  size_t pos = 0;
  for (;;) {
    const auto open = tmpl.find("{{", pos);
    const auto close = open == std::string::npos ? std::string::npos : tmpl.find("}}", open + 2);
    if (close == std::string::npos) {
      fn.append(tmpl, pos);
      break;
    }
    const auto it = values.find(std::string_view(tmpl).substr(open + 2, close - open - 2));
    if (it == values.end()) {  // Not a placeholder (the template's comments mention "{{...}}").
      fn.append(tmpl, pos, open + 2 - pos);
      pos = open + 2;
      continue;
    }
    fn.append(tmpl, pos, open - pos);
    fn += it->second;
    pos = close + 2;
  }
  ddl.statements.push_back(std::move(fn));

  // Every trigger pgferry may put on a table is dropped first, so a table that changes kind
  // (set-based or not, TRUNCATE or not) keeps only the triggers it now needs.
  const auto table = spec.table.quoted();
  for (const auto& t : triggers_for(spec)) {
    ddl.statements.push_back(fmt::format("DROP TRIGGER IF EXISTS {} ON {}", sql::quote_ident(t.name), table));
    if (!t.wanted) continue;
    ddl.statements.push_back(fmt::format("CREATE TRIGGER {} {} ON {} {} EXECUTE FUNCTION {}()",
                                         sql::quote_ident(t.name), t.events, table, t.rest, ddl.function_name));
  }
  ddl.fingerprint = fingerprint_of(ddl.statements);
  return ddl;
}

std::vector<std::string> trigger_names(const CaptureSpec& spec) {
  std::vector<std::string> out;
  for (const auto& t : triggers_for(spec)) {
    if (t.wanted) out.emplace_back(t.name);
  }
  return out;
}

std::vector<std::string> render_drop_capture(const sql::QualifiedName& table, const std::string& function_name,
                                             bool table_exists) {
  std::vector<std::string> out;
  if (table_exists) {
    for (const auto& t : triggers_for(CaptureSpec{})) {  // every one, wanted or not
      out.push_back(fmt::format("DROP TRIGGER IF EXISTS {} ON {}", sql::quote_ident(t.name), table.quoted()));
    }
  }
  out.push_back(fmt::format("DROP FUNCTION IF EXISTS {}()", function_name));
  return out;
}

}  // namespace pgferry::capture
