#include "errors_cmd.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "apply_sql.hpp"
#include "capture_sql.hpp"
#include "catalog.hpp"
#include "journal.hpp"
#include "log.hpp"
#include "pg.hpp"
#include "setup.hpp"
#include "sql.hpp"
#include "stream.hpp"

namespace pgferry {
namespace {

// Error classes the replicator writes (see migrations/target/0001_state.sql).
constexpr std::string_view kQuarantineRow = "quarantine_row";
constexpr std::string_view kHeldBack = "held_back";
constexpr std::string_view kStopTable = "stop_table";
constexpr std::string_view kMassDelete = "mass_delete";

constexpr const char* kNoteRowRetried = "retried: target set to the source's current row";
constexpr const char* kNoteTableResumed = "retried: table resumed";
constexpr const char* kNoteDeleteConfirmed = "confirmed by errors retry: the delete is applied";

/// The fix hint for a failing statement on pgferry's own tables.
std::string setup_fix(const Session& db) {
  const auto& s = db.last_sqlstate();
  return s == "42P01" || s == "3F000" ? "run pgferry setup with this configuration first" : std::string();
}

/// Prints a failed statement on pgferry's own tables and returns the exit code for it.
int fail(const Session& db, Error e) {
  if (e.fix.empty()) e.fix = setup_fix(db);
  print_error(e);
  return exit_code_for(e);
}

/// A server message without the " [SQLSTATE xxxxx]" Session appends: sync_errors keeps the code apart.
std::string without_sqlstate(std::string message) {
  const auto pos = message.rfind(" [SQLSTATE ");
  if (pos != std::string::npos && message.back() == ']') message.erase(pos);
  return message;
}

/// "public.users" for "\"public\".\"users\"": names as a person reads them (the stored text if it
/// does not parse).
std::string display_name(const std::string& quoted) {
  auto name = sql::parse_qualified_name(quoted);
  return name ? name->display() : quoted;
}

/// A list of ids for messages: "3, 4, 7".
std::string id_list(const std::vector<std::int64_t>& ids) {
  std::string out;
  for (auto id : ids) out += (out.empty() ? "" : ", ") + std::to_string(id);
  return out;
}

/// The ids in the first column of a result, sorted.
std::vector<std::int64_t> ids_of(const PGresult* res) {
  std::vector<std::int64_t> ids(static_cast<std::size_t>(PQntuples(res)));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ids[i] = std::strtoll(value(res, static_cast<int>(i), 0).c_str(), nullptr, 10);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

/// A text array literal for ids ({3,4,7}), passed as one parameter.
std::string id_array(const std::vector<std::int64_t>& ids) { return "{" + id_list(ids) + "}"; }

bool stdout_is_terminal() { return isatty(STDOUT_FILENO) == 1; }

std::size_t terminal_width() {
  winsize w{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) return w.ws_col;
  return 120;
}

/// A value as one line: newlines and tabs become spaces.
std::string one_line(std::string s) {
  std::replace_if(
      s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
  return s;
}

/// Cuts `s` to at most `width` characters (counting UTF-8 code points), marking the cut with "...".
std::string truncated(const std::string& s, std::size_t width) {
  std::size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80 ? 1 : 0;
  if (chars <= width) return s;
  const std::size_t keep = width > 3 ? width - 3 : 0;
  std::size_t n = 0;
  std::size_t pos = 0;
  for (; pos < s.size(); ++pos) {
    if ((static_cast<unsigned char>(s[pos]) & 0xC0) != 0x80) {
      if (n == keep) break;
      ++n;
    }
  }
  return s.substr(0, pos) + "...";
}

/// The display width of `s` in code points (close enough for names and messages).
std::size_t width_of(const std::string& s) {
  std::size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80 ? 1 : 0;
  return chars;
}

// ---------------------------------------------------------------------------------------------
// errors list

/// Resolves --table to the quoted source name sync_errors stores, or fails naming it (exit 2).
Result<std::string> table_filter(const Config& config, const std::string& table) {
  auto name = sql::parse_qualified_name(table);
  if (!name) {
    auto e = std::move(name).error();
    e.where = "--table";
    return e;
  }
  const TableConfig* t = config.find_table(*name);
  if (t == nullptr) {
    return config_error("--table", fmt::format("{} is not a configured table", name->display()),
                        "name a source table listed under tables: in the configuration");
  }
  return t->source.quoted();
}

int list_errors(const Config& config, const ErrorsOptions& options) {
  Param table;
  if (!options.table.empty()) {
    auto t = table_filter(config, options.table);
    if (!t) {
      print_error(t.error());
      return 2;
    }
    table = *t;
  }
  auto target = Session::connect(config.target, "target");
  if (!target) {
    print_error(target.error());
    return 1;
  }
  const std::string where = "WHERE ($1::text IS NULL OR e.source_table = $1) AND (NOT $2::boolean OR NOT e.resolved)";
  const Param open = options.open ? "true" : "false";
  if (options.json) {
    // Every column, as PostgreSQL renders it: row_key and row_image stay JSON, times are ISO 8601.
    auto r = target->query(
        fmt::format("SELECT row_to_json(e)::text FROM pgferry.sync_errors e {} ORDER BY e.id DESC", where),
        {table, open});
    if (!r) return fail(*target, std::move(r).error());
    for (int i = 0; i < PQntuples(r->get()); ++i) fmt::print("{}\n", value(r->get(), i, 0));
    return 0;
  }
  auto r = target->query(
      fmt::format("SELECT e.id, to_char(e.first_seen, 'YYYY-MM-DD HH24:MI:SS'), "
                  "to_char(e.last_seen, 'YYYY-MM-DD HH24:MI:SS'), e.source_table, e.target_table, e.error_class, "
                  "e.op, coalesce(e.row_key::text, ''), coalesce(e.sqlstate, ''), e.attempts, "
                  "CASE WHEN e.resolved THEN 'resolved' ELSE 'open' END, e.message "
                  "FROM pgferry.sync_errors e {} ORDER BY e.id DESC",
                  where),
      {table, open});
  if (!r) return fail(*target, std::move(r).error());
  const bool terminal = stdout_is_terminal();
  const int n = PQntuples(r->get());
  if (n == 0) {
    if (terminal) fmt::print("no sync errors\n");
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"ID", "FIRST SEEN", "LAST SEEN", "TABLE", "CLASS", "OP", "KEY", "SQLSTATE", "ATTEMPTS", "STATUS", "MESSAGE"});
  int open_count = 0;
  for (int i = 0; i < n; ++i) {
    const auto* res = r->get();
    const auto source = display_name(value(res, i, 3));
    const auto target_name = display_name(value(res, i, 4));
    const auto status = value(res, i, 10);
    open_count += status == "open" ? 1 : 0;
    rows.push_back({value(res, i, 0), value(res, i, 1), value(res, i, 2),
                    source == target_name ? source : source + " -> " + target_name, value(res, i, 5), value(res, i, 6),
                    one_line(value(res, i, 7)), value(res, i, 8), value(res, i, 9), status,
                    one_line(value(res, i, 11))});
  }
  const std::size_t columns = rows.front().size();
  std::vector<std::size_t> widths(columns, 0);
  for (const auto& row : rows) {
    for (std::size_t c = 0; c + 1 < columns; ++c) widths[c] = std::max(widths[c], width_of(row[c]));
  }
  std::size_t used = 0;
  for (std::size_t c = 0; c + 1 < columns; ++c) used += widths[c] + 2;
  const std::size_t message_width =
      terminal ? std::max<std::size_t>(40, terminal_width() - std::min(used, terminal_width())) : std::string::npos;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c + 1 < columns; ++c) {
      line += row[c];
      line.append(widths[c] - width_of(row[c]) + 2, ' ');
    }
    line += message_width == std::string::npos ? row.back() : truncated(row.back(), message_width);
    fmt::print("{}\n", line);
  }
  if (terminal) fmt::print("{} error(s), {} open\n", n, open_count);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Loading errors by id

struct SyncError {
  std::int64_t id = 0;
  std::string source_table;  // quoted, as in table_state
  std::string error_class;
  std::optional<std::string> row_key;  // jsonb text
  std::optional<std::int64_t> journal_id;
  bool resolved = false;
};

/// The errors named by id (failing with exit 2 on an unknown one), or every open error.
Result<std::vector<SyncError>> load_errors(Session& target, const ErrorsOptions& options) {
  auto r = options.all ? target.exec(
                             "SELECT id, source_table, error_class, row_key::text, journal_id, resolved "
                             "FROM pgferry.sync_errors WHERE NOT resolved ORDER BY id")
                       : target.query(
                             "SELECT id, source_table, error_class, row_key::text, journal_id, resolved "
                             "FROM pgferry.sync_errors WHERE id = ANY ($1::bigint[]) ORDER BY id",
                             {id_array(options.ids)});
  if (!r) {
    auto e = std::move(r).error();
    if (e.fix.empty()) e.fix = setup_fix(target);
    return e;
  }
  std::vector<SyncError> out;
  std::set<std::int64_t> found;
  for (int i = 0; i < PQntuples(r->get()); ++i) {
    const auto* res = r->get();
    SyncError e;
    e.id = std::strtoll(value(res, i, 0).c_str(), nullptr, 10);
    e.source_table = value(res, i, 1);
    e.error_class = value(res, i, 2);
    if (PQgetisnull(res, i, 3) == 0) e.row_key = value(res, i, 3);
    if (PQgetisnull(res, i, 4) == 0) e.journal_id = std::strtoll(value(res, i, 4).c_str(), nullptr, 10);
    e.resolved = is_true(res, i, 5);
    found.insert(e.id);
    out.push_back(std::move(e));
  }
  std::vector<std::int64_t> unknown;
  for (auto id : options.ids) {
    if (found.count(id) == 0 && std::find(unknown.begin(), unknown.end(), id) == unknown.end()) unknown.push_back(id);
  }
  if (!unknown.empty()) {
    return config_error("ID", fmt::format("no sync error with id {}", id_list(unknown)),
                        "see pgferry errors list for the ids; nothing was changed");
  }
  return out;
}

/// Wakes a running replicator: it re-reads table_state and the open errors at its next step.
void wake_replicator(const Config& config, Session* source) {
  const auto sql = fmt::format("NOTIFY {}", capture::kChannel);
  if (source != nullptr && source->alive()) {
    (void)source->run(sql);
    return;
  }
  if (auto s = Session::connect(config.source, "source")) (void)s->run(sql);
}

// ---------------------------------------------------------------------------------------------
// errors resolve

int resolve_errors(const Config& config, const ErrorsOptions& options) {
  if (options.note.empty()) {
    print_error(config_error("--note", "the note is empty",
                             "say why the errors are resolved, e.g. --note 'row fixed by hand'"));
    return 2;
  }
  auto target = Session::connect(config.target, "target");
  if (!target) {
    print_error(target.error());
    return 1;
  }
  auto errors = load_errors(*target, options);
  if (!errors) {
    print_error(errors.error());
    return exit_code_for(errors.error());
  }
  std::vector<std::int64_t> open;
  for (const auto& e : *errors) {
    if (e.resolved) {
      fmt::print("error {} is already resolved; left as it is\n", e.id);
    } else {
      open.push_back(e.id);
    }
  }
  if (open.empty()) return 0;
  auto r = target->query(
      "UPDATE pgferry.sync_errors SET resolved = true, resolved_at = now(), resolution_note = $2 "
      "WHERE id = ANY ($1::bigint[]) AND NOT resolved RETURNING id",
      {id_array(open), options.note});
  if (!r) return fail(*target, std::move(r).error());
  const auto done = ids_of(r->get());
  fmt::print("resolved {} error(s): {}\n", done.size(), id_list(done));
  // Resolving applies nothing: a table stopped by one of them stays stopped.
  std::set<std::string> warned;
  for (const auto& e : *errors) {
    if (e.resolved || (e.error_class != kStopTable && e.error_class != kMassDelete)) continue;
    if (!warned.insert(e.source_table).second) continue;
    auto st = target->query("SELECT status FROM pgferry.table_state WHERE source_table = $1", {e.source_table});
    if (st && PQntuples(st->get()) == 1 && value(st->get(), 0, 0) == "stopped") {
      print_stderr(
          "warning: {} stays stopped: resolve applies nothing and does not resume a table\n"
          "  fix: pgferry errors retry {} checks the table (or confirms the held-back delete) and resumes it\n",
          display_name(e.source_table), e.id);
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// errors retry

/// A configured table as a retry writes it: its StreamTable when the table can replicate now,
/// else why not.
struct RetryTable {
  std::optional<StreamTable> stream;
  std::string problem;  // what stops the table from replicating, with the fix
};

/// Connections and the configured tables, inspected against both catalogs. Unlike
/// load_stream_tables, one broken table (say, a target column dropped: the very thing a stop_table
/// error is about) does not fail the others: it carries its problems instead.
struct RetryContext {
  Connected connected;
  std::map<std::string, RetryTable> tables;  // by quoted source name
};

/// Connects and inspects; prints and returns the exit code on failure (0 on success).
int load_retry_context(const Config& config, RetryContext& ctx) {
  const int code = connect_and_inspect(config, ctx.connected, false);
  if (!ctx.connected.source || !ctx.connected.target || (code != 0 && ctx.connected.tables.empty())) {
    return code != 0 ? code : 1;  // connect_and_inspect printed why
  }
  for (const auto& t : ctx.connected.tables) {
    RetryTable rt;
    std::string problems;
    for (const auto& p : t.resolved.problems) {
      problems += fmt::format("{}{} (fix: {})", problems.empty() ? "" : "; ", p.message, p.fix);
    }
    if (problems.empty()) {
      auto state = capture_state(*ctx.connected.source, t);
      if (!state) {
        print_error(state.error());
        return 1;
      }
      if (!state->registered) {
        problems = fmt::format("{} is not captured on the source (fix: run pgferry setup with this configuration)",
                               t.config->source.display());
      } else {
        rt.stream = stream_table_for(t, state->table_id);
      }
    }
    rt.problem = problems;
    ctx.tables[t.config->source.quoted()] = std::move(rt);
  }
  return 0;
}

/// The source's current image of the row with key `row_key` (a jsonb object of source key
/// columns), exactly as the capture trigger would journal it, or nullopt when the source has no
/// such row (or it no longer passes the row filter).
Result<std::optional<std::string>> current_image(Session& source, const StreamTable& t, const std::string& row_key) {
  const auto& spec = t.capture;
  const auto table = spec.table.quoted();
  std::string match;
  for (const auto& k : t.source_key) {
    if (!match.empty()) match += " AND ";
    const auto q = sql::quote_ident(k);
    const bool as_text = std::find(spec.text_columns.begin(), spec.text_columns.end(), k) != spec.text_columns.end();
    // A json/jsonb key is journaled as its text: compare the text. Anything else goes through the
    // table's own column types (jsonb_populate_record), so = uses the key's index.
    match += as_text ? fmt::format("t.{}::text = ($1::jsonb ->> {})", q, sql::quote_literal(k))
                     : fmt::format("t.{} = pgferry_key.{}", q, q);
  }
  const auto sql = fmt::format(
      "SELECT ({})::text FROM jsonb_populate_record(NULL::{}, $1::jsonb) AS pgferry_key, {} AS t WHERE {} AND {}",
      capture::image_expression(spec, "t"), table, table, match, capture::filter_expression(spec, "t"));
  auto r = source.query(sql, {row_key});
  if (!r) return std::move(r).error();
  if (PQntuples(r->get()) == 0) return std::optional<std::string>();
  return std::optional<std::string>(value(r->get(), 0, 0));
}

/// What came of one retried key.
struct KeyOutcome {
  bool ok = false;
  bool deleted = false;                // the source has no such row: deleted on the target
  std::vector<std::int64_t> resolved;  // ids marked resolved
  std::optional<Error> error;          // why it failed
  bool target_rejected = false;        // the target refused the write (the row's fault, not a connection's)
  std::string sqlstate;
};

constexpr const char* kKeyErrors =
    "source_table = $1 AND row_key = $2::jsonb AND NOT resolved AND (error_class IN ('quarantine_row', 'held_back') "
    "OR id = ANY ($3::bigint[]))";

/// Sets the target row of one key to the source's current row, in one target transaction that
/// holds the table lock exclusively from before the source read until after the commit.
KeyOutcome retry_key(Session& target, Session& source, const StreamTable& t, const std::string& row_key,
                     const std::vector<std::int64_t>& ids) {
  KeyOutcome out;
  auto failed = [&](Error e, bool on_target) {
    out.error = std::move(e);
    // Only an answer from the server is about the row; a dropped connection is not.
    out.target_rejected = on_target && !target.last_sqlstate().empty() && target.alive();
    out.sqlstate = out.target_rejected ? target.last_sqlstate() : std::string();
    (void)target.run("ROLLBACK");
    return out;
  };
  if (auto r = target.run("BEGIN"); !r) return failed(std::move(r).error(), false);
  // Exclusive: every batch holds the lock shared until it commits, so once this returns no batch
  // of this table is between its journal read and its commit, and the source read below is newer
  // than anything a batch can still write.
  if (auto r = target.run(apply::render_table_locks({t.table_id}, false)); !r)
    return failed(std::move(r).error(), false);
  auto image = current_image(source, t, row_key);
  if (!image) return failed(std::move(image).error(), false);
  if (image->has_value()) {
    auto mapped = map_image(**image, t.mapping);
    if (!mapped) return failed(std::move(mapped).error(), false);
    auto r = target.query(apply::render_upsert(t.shape, apply::Compare::Text), {"[" + *mapped + "]"});
    if (!r) return failed(std::move(r).error(), true);
  } else {
    auto key = map_image(row_key, t.mapping);
    if (!key) return failed(std::move(key).error(), false);
    auto r = target.query(apply::render_delete(t.shape), {"[" + *key + "]"});
    if (!r) return failed(std::move(r).error(), true);
    out.deleted = true;
  }
  auto r = target.query(fmt::format("UPDATE pgferry.sync_errors SET resolved = true, resolved_at = now(), "
                                    "resolution_note = $4 WHERE {} RETURNING id",
                                    kKeyErrors),
                        {t.source_name, row_key, id_array(ids), kNoteRowRetried});
  if (!r) return failed(std::move(r).error(), false);
  out.resolved = ids_of(r->get());
  if (auto c = target.run("COMMIT"); !c) return failed(std::move(c).error(), false);
  out.ok = true;
  return out;
}

/// Records a failed retry on the errors it was about: one more attempt, the new error.
void record_attempt(Session& target, const std::string& where_sql, const std::vector<Param>& params,
                    const std::string& message, const std::string& sqlstate) {
  std::vector<Param> p = params;
  const auto n = p.size();
  p.emplace_back(message);
  p.push_back(sqlstate.empty() ? Param() : Param(sqlstate));
  auto r = target.query(fmt::format("UPDATE pgferry.sync_errors SET attempts = attempts + 1, last_seen = now(), "
                                    "message = ${}, sqlstate = coalesce(${}, sqlstate) WHERE {}",
                                    n + 1, n + 2, where_sql),
                        p);
  if (!r) print_error(r.error());
}

/// Whether the target takes the table's statements now: they prepare (the columns exist with
/// usable types) and the role has the rights to run them.
Status check_table(Session& target, const StreamTable& t) {
  auto rights = target.scalar(
      "SELECT coalesce(string_agg(p, ', '), '') FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS p "
      "WHERE NOT has_table_privilege($1::regclass, p)",
      {t.shape.table.quoted()});
  if (!rights) return std::move(rights).error();
  if (!rights->empty()) {
    return runtime_error(t.label, fmt::format("the target role lacks {} on {}", *rights, t.shape.table.display()),
                         fmt::format("GRANT {} ON {} TO the target role", *rights, t.shape.table.quoted()));
  }
  // Prepared outside a transaction, so a failed Parse leaves nothing to roll back.
  const auto upsert = fmt::format("pgferry_errors_upsert_{}", t.table_id);
  const auto del = fmt::format("pgferry_errors_delete_{}", t.table_id);
  Status result = target.prepare(del, apply::render_delete(t.shape));
  if (result) {
    result = prepare_upsert(target, upsert, [&](apply::Compare c) { return apply::render_upsert(t.shape, c); });
  }
  (void)target.run("DEALLOCATE ALL");
  return result;
}

int retry_errors(const Config& config, const ErrorsOptions& options) {
  auto target_session = Session::connect(config.target, "target");
  if (!target_session) {
    print_error(target_session.error());
    return 1;
  }
  Session& target = *target_session;
  auto loaded = load_errors(target, options);
  if (!loaded) {
    print_error(loaded.error());
    return exit_code_for(loaded.error());
  }
  std::vector<SyncError> open;
  for (auto& e : *loaded) {
    if (e.resolved) {
      fmt::print("error {} is already resolved; skipped\n", e.id);
    } else {
      open.push_back(std::move(e));
    }
  }
  if (open.empty()) {
    fmt::print("no open sync errors to retry\n");
    return 0;
  }

  // What to do, grouped: keys to set from the source, tables to check and resume, and the rest.
  std::map<std::pair<std::string, std::string>, std::vector<std::int64_t>> keys;  // (table, row_key) -> ids
  std::map<std::string, std::vector<const SyncError*>> stopping;                  // table -> stop/mass errors
  std::vector<const SyncError*> unretryable;
  for (const auto& e : open) {
    if (e.error_class == kStopTable || e.error_class == kMassDelete) {
      stopping[e.source_table].push_back(&e);
    } else if (e.row_key) {
      // quarantine_row, held_back, or another class about one row: re-applying the source's
      // current row is what a retry of a row means.
      keys[{e.source_table, *e.row_key}].push_back(e.id);
    } else {
      unretryable.push_back(&e);
    }
  }
  bool need_tables = !keys.empty();
  for (const auto& [table, errs] : stopping) {
    for (const auto* e : errs) need_tables = need_tables || e->error_class == kStopTable;
  }
  RetryContext ctx;
  if (need_tables) {
    if (const int code = load_retry_context(config, ctx); code != 0) return code;
  }
  auto table_of = [&](const std::string& source_table) -> const RetryTable* {
    auto it = ctx.tables.find(source_table);
    return it == ctx.tables.end() ? nullptr : &it->second;
  };

  int failures = 0;
  bool changed = false;

  // Stopped tables: check what stopped them, confirm held-back deletes, resume when nothing open
  // stops them any more. One transaction per table.
  for (const auto& entry : stopping) {
    // Not a structured binding: the transaction lambda below captures the name.
    const std::string& source_table = entry.first;
    const auto& errs = entry.second;
    const auto name = display_name(source_table);
    std::vector<std::int64_t> stop_ids, mass_ids;
    std::optional<std::int64_t> confirm_id;
    for (const auto* e : errs) {
      if (e->error_class == kStopTable) {
        stop_ids.push_back(e->id);
      } else {
        mass_ids.push_back(e->id);
        if (e->journal_id) confirm_id = std::max(confirm_id.value_or(0), *e->journal_id);
      }
    }
    bool stop_ok = stop_ids.empty();
    if (!stop_ids.empty()) {
      const RetryTable* t = table_of(source_table);
      std::optional<Error> why;
      std::string sqlstate;
      if (t == nullptr) {
        why = config_error(
            name, "is not a configured table",
            fmt::format("pgferry errors resolve {} --note '...' if it is no longer replicated", id_list(stop_ids)));
      } else if (!t->stream) {
        why = runtime_error(name, t->problem);
      } else if (auto c = check_table(target, *t->stream); !c) {
        why = std::move(c).error();
        sqlstate = target.last_sqlstate();
      }
      if (why) {
        ++failures;
        record_attempt(target, "id = ANY ($1::bigint[]) AND NOT resolved", {id_array(stop_ids)},
                       without_sqlstate(why->message), sqlstate);
        print_error(runtime_error(
            fmt::format("{} (error {})", name, id_list(stop_ids)),
            fmt::format("the target table is still not usable, the table stays stopped: {}", why->message),
            why->fix.empty() ? "fix the target table (columns, types, rights) to match the configuration, then run "
                               "pgferry errors retry again"
                             : why->fix));
      } else {
        stop_ok = true;
      }
    }
    if (!stop_ok && mass_ids.empty()) continue;
    auto tx = [&]() -> Result<std::string> {
      if (auto r = target.run("BEGIN"); !r) return std::move(r).error();
      if (stop_ok && !stop_ids.empty()) {
        auto r = target.query(
            "UPDATE pgferry.sync_errors SET resolved = true, resolved_at = now(), resolution_note = $2 "
            "WHERE id = ANY ($1::bigint[]) AND NOT resolved",
            {id_array(stop_ids), kNoteTableResumed});
        if (!r) return std::move(r).error();
      }
      if (!mass_ids.empty()) {
        auto r = target.query(
            "UPDATE pgferry.sync_errors SET resolved = true, resolved_at = now(), resolution_note = $2 "
            "WHERE id = ANY ($1::bigint[]) AND NOT resolved",
            {id_array(mass_ids), kNoteDeleteConfirmed});
        if (!r) return std::move(r).error();
        auto g = target.query(
            "UPDATE pgferry.table_state SET guard_confirmed_id = greatest(coalesce(guard_confirmed_id, 0), "
            "$2::bigint), updated_at = now() WHERE source_table = $1",
            {source_table, confirm_id ? Param(std::to_string(*confirm_id)) : Param()});
        if (!g) return std::move(g).error();
      }
      // Resume only when no open error still stops the table (another stop_table or mass_delete
      // not retried this time keeps it stopped).
      auto st = target.query(
          "UPDATE pgferry.table_state SET status = 'streaming', stop_class = NULL, stop_reason = NULL, "
          "updated_at = now() WHERE source_table = $1 AND status = 'stopped' AND NOT EXISTS ("
          "SELECT 1 FROM pgferry.sync_errors e WHERE e.source_table = $1 AND NOT e.resolved "
          "AND e.error_class IN ('stop_table', 'mass_delete')) RETURNING status",
          {source_table});
      if (!st) return std::move(st).error();
      const bool resumed = PQntuples(st->get()) == 1;
      auto now = target.query(
          "SELECT s.status, (SELECT string_agg(e.id::text, ', ' ORDER BY e.id) FROM pgferry.sync_errors e "
          "WHERE e.source_table = $1 AND NOT e.resolved AND e.error_class IN ('stop_table', 'mass_delete')) "
          "FROM pgferry.table_state s WHERE s.source_table = $1",
          {source_table});
      if (!now) return std::move(now).error();
      if (auto r = target.run("COMMIT"); !r) return std::move(r).error();
      if (resumed) return std::string("resumed");
      if (PQntuples(now->get()) == 0) return std::string("no state");
      const auto status = value(now->get(), 0, 0);
      const auto blocking = value(now->get(), 0, 1);
      if (status == "stopped") return "stopped:" + blocking;
      return status;
    }();
    if (!tx) {
      (void)target.run("ROLLBACK");
      ++failures;
      print_error(tx.error());
      continue;
    }
    changed = true;
    if (!mass_ids.empty()) {
      fmt::print(
          "{}: confirmed the held-back delete (error {}); the guard lets deletes journaled up to id {} through\n", name,
          id_list(mass_ids), confirm_id ? std::to_string(*confirm_id) : std::string("?"));
    }
    if (stop_ok && !stop_ids.empty()) {
      fmt::print("{}: the target table takes pgferry's statements again (error {} resolved)\n", name,
                 id_list(stop_ids));
    }
    if (*tx == "resumed") {
      fmt::print("{}: resumed; a running pgferry run picks it up within a second or so\n", name);
    } else if (tx->rfind("stopped:", 0) == 0) {
      const auto blocking = tx->substr(8);
      fmt::print("{}: still stopped{}\n", name,
                 blocking.empty()
                     ? std::string()
                     : fmt::format(" by open error {}; run pgferry errors retry {} too", blocking, blocking));
    } else if (*tx == "no state") {
      fmt::print("{}: has no table_state on the target (run pgferry setup with this configuration)\n", name);
    }
  }

  // Rows: set each key's target row to the source's current row.
  for (const auto& [k, ids] : keys) {
    const auto& [source_table, row_key] = k;
    const auto name = display_name(source_table);
    const RetryTable* t = table_of(source_table);
    if (t == nullptr || !t->stream) {
      ++failures;
      print_error(runtime_error(
          fmt::format("{} key {} (error {})", name, row_key, id_list(ids)),
          t == nullptr ? "the table is not configured, so its row cannot be read from the source"
                       : fmt::format("the table cannot replicate now: {}", t->problem),
          t == nullptr
              ? fmt::format("pgferry errors resolve {} --note '...' if it is no longer replicated", id_list(ids))
              : "fix the table, then run pgferry errors retry again"));
      continue;
    }
    if (!target.alive() || !ctx.connected.source->alive()) {
      ++failures;
      print_error(runtime_error(fmt::format("{} key {} (error {})", name, row_key, id_list(ids)),
                                "not retried: the connection to the target or the source was lost",
                                "run pgferry errors retry again once both databases can be reached"));
      continue;
    }
    auto out = retry_key(target, *ctx.connected.source, *t->stream, row_key, ids);
    if (out.ok) {
      changed = true;
      fmt::print("{} key {}: {}; resolved error(s) {}\n", t->stream->label, row_key,
                 out.deleted ? "the source has no such row any more, deleted it on the target"
                             : "target row set to the source's current row",
                 id_list(out.resolved));
      continue;
    }
    ++failures;
    const auto message = without_sqlstate(out.error->message);
    if (out.target_rejected) {
      record_attempt(target, kKeyErrors, {t->stream->source_name, row_key, id_array(ids)}, message, out.sqlstate);
    }
    print_error(runtime_error(
        fmt::format("{} key {} (error {})", t->stream->label, row_key, id_list(ids)),
        fmt::format("retry failed{}: {}", out.target_rejected ? ", the target rejects the row" : "",
                    out.error->describe()),
        out.target_rejected ? fmt::format("make the target accept the row (constraint, type, trigger), then retry "
                                          "again; or pgferry errors resolve {} --note '...' to give it up",
                                          id_list(ids))
                            : "check the connection, then run pgferry errors retry again"));
  }

  for (const auto* e : unretryable) {
    ++failures;
    print_error(runtime_error(fmt::format("error {}", e->id),
                              fmt::format("an error of class '{}' without a row key cannot be retried", e->error_class),
                              fmt::format("deal with it by hand, then pgferry errors resolve {} --note '...'", e->id)));
  }

  if (changed) wake_replicator(config, ctx.connected.source ? &*ctx.connected.source : nullptr);
  return failures > 0 ? 1 : 0;
}

}  // namespace

int run_errors(const Config& config, const ErrorsOptions& options) {
  switch (options.action) {
    case ErrorsOptions::Action::List:
      return list_errors(config, options);
    case ErrorsOptions::Action::Retry:
      return retry_errors(config, options);
    case ErrorsOptions::Action::Resolve:
      return resolve_errors(config, options);
  }
  return 2;
}

}  // namespace pgferry
