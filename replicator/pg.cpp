#include "pg.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "conninfo.hpp"

namespace pgferry {
namespace {

// Server NOTICEs ("trigger ... does not exist, skipping") are routine during setup: log them at
// debug level instead of letting libpq print them on stderr.
void on_notice(void* arg, const char* message) {
  const auto* label = static_cast<const std::string*>(arg);
  std::string_view m(message);
  while (!m.empty() && m.back() == '\n') m.remove_suffix(1);
  spdlog::debug("{} database: {}", *label, m);
}

std::vector<std::pair<std::string, std::string>>& defaults() {
  static std::vector<std::pair<std::string, std::string>> d = {{"connect_timeout", "10"}};
  return d;
}

}  // namespace

void set_connection_defaults(std::vector<std::pair<std::string, std::string>> d) { defaults() = std::move(d); }

ConnectParams::ConnectParams(const std::string& conninfo, std::string_view application_name) : owned_(defaults()) {
  owned_.emplace_back("fallback_application_name", std::string(application_name));
  owned_.emplace_back("dbname", conninfo);
  for (const auto& [k, v] : owned_) {
    keys_.push_back(k.c_str());
    values_.push_back(v.c_str());
  }
  keys_.push_back(nullptr);
  values_.push_back(nullptr);
}

Session::Session(PgConnPtr conn, std::string label, std::string conninfo)
    : conn_(std::move(conn)), label_(std::make_unique<std::string>(std::move(label))), conninfo_(std::move(conninfo)) {}

Result<Session> Session::connect(const std::string& conninfo, std::string label, std::string_view application_name) {
  // Earlier keywords are defaults; the user's conninfo, expanded from "dbname", overrides them.
  const ConnectParams params(conninfo, application_name);
  PgConnPtr conn(PQconnectdbParams(params.keys(), params.values(), 1));
  if (!conn) return runtime_error(label + " database", "out of memory while connecting");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn.get());
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return runtime_error(fmt::format("{} database ({})", label, redact_conninfo(conninfo)),
                         fmt::format("cannot connect: {}", scrub_password(msg, conninfo)),
                         fmt::format("check that the server is up and the '{}:' connection string in the "
                                     "configuration is right",
                                     label));
  }
  Session s(std::move(conn), std::move(label), conninfo);
  PQsetNoticeProcessor(s.conn_.get(), on_notice, s.label_.get());
  // standard_conforming_strings is assumed by sql::quote_literal; refuse servers configured otherwise.
  const char* scs = PQparameterStatus(s.conn_.get(), "standard_conforming_strings");
  if (scs == nullptr || std::string_view(scs) != "on") {
    return runtime_error(s.label() + " database", "standard_conforming_strings is off",
                         "turn it on (the PostgreSQL default since 9.1) for pgferry's role");
  }
  return s;
}

Result<PgResultPtr> Session::check(PgResultPtr res, std::string_view sql) {
  last_sqlstate_.clear();
  const auto st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return res;
  std::string msg;
  if (res) {
    const char* state = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE);
    last_sqlstate_ = state != nullptr ? state : "";
    const char* primary = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY);
    msg = primary != nullptr ? primary : PQresultErrorMessage(res.get());
    if (const char* detail = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_DETAIL)) msg += fmt::format(" ({})", detail);
  } else {
    msg = PQerrorMessage(conn_.get());
  }
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  std::string first_line(sql.substr(0, sql.find('\n')));
  if (first_line.size() > 120) first_line = first_line.substr(0, 117) + "...";
  spdlog::debug("{} database: statement failed: {}", label(), first_line);
  return runtime_error(
      label() + " database",
      scrub_password(fmt::format("{}{}", msg, last_sqlstate_.empty() ? "" : " [SQLSTATE " + last_sqlstate_ + "]"),
                     conninfo_));
}

Status Session::prepare(const std::string& name, std::string_view sql) {
  auto r = check(PgResultPtr(PQprepare(conn_.get(), name.c_str(), std::string(sql).c_str(), 0, nullptr)), sql);
  if (!r) return std::move(r).error();
  return Ok{};
}

Result<PgResultPtr> Session::exec_prepared(const std::string& name, const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return check(PgResultPtr(PQexecPrepared(conn_.get(), name.c_str(), static_cast<int>(values.size()), values.data(),
                                          nullptr, nullptr, 0)),
               name);
}

Result<std::optional<std::string>> Session::prepared_name(const Statement& statement) {
  if (statement.kind == Statement::kNamed) return std::optional<std::string>(statement.text);
  if (statement.kind != Statement::kReused) return std::optional<std::string>();
  if (auto it = reused_.find(statement.text); it != reused_.end()) return std::optional<std::string>(it->second);
  if (reused_.size() >= kMaxReused) return std::optional<std::string>();
  std::string name = fmt::format("pgferry_reused_{}", reused_.size() + 1);
  if (auto p = prepare(name, statement.text); !p) return std::move(p).error();
  reused_.emplace(statement.text, name);
  return std::optional<std::string>(std::move(name));
}

Result<PgResultPtr> Session::execute(const Statement& statement) {
  auto name = prepared_name(statement);
  if (!name) return std::move(name).error();
  return *name ? exec_prepared(**name, statement.params) : query(statement.text, statement.params);
}

Result<PgResultPtr> Session::exec(std::string_view sql) {
  return check(PgResultPtr(PQexec(conn_.get(), std::string(sql).c_str())), sql);
}

Result<PgResultPtr> Session::query(std::string_view sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return check(PgResultPtr(PQexecParams(conn_.get(), std::string(sql).c_str(), static_cast<int>(values.size()), nullptr,
                                        values.data(), nullptr, nullptr, 0)),
               sql);
}

Status Session::run(std::string_view sql) {
  auto r = exec(sql);
  if (!r) return std::move(r).error();
  return Ok{};
}

Result<std::string> Session::scalar(std::string_view sql, const std::vector<Param>& params) {
  auto r = query(sql, params);
  if (!r) return std::move(r).error();
  if (PQntuples(r->get()) != 1 || PQnfields(r->get()) != 1) {
    return runtime_error(label() + " database", fmt::format("expected one value from: {}", sql));
  }
  return value(r->get(), 0, 0);
}

Error Session::lost_pipeline(std::string_view what) {
  broken_ = true;
  last_sqlstate_.clear();
  return runtime_error(label() + " database",
                       scrub_password(fmt::format("{}: {}", what, PQerrorMessage(conn_.get())), conninfo_));
}

Status Session::send_pipeline(const std::vector<Statement>& statements) {
  // The prepared statements' names, a reused one prepared now if new (outside the pipeline).
  std::vector<std::optional<std::string>> names(statements.size());
  for (std::size_t i = 0; i < statements.size(); ++i) {
    auto name = prepared_name(statements[i]);
    if (!name) return std::move(name).error();
    names[i] = std::move(*name);
  }
  // Some of it may be on the wire when sending fails: the session cannot be used again.
  if (PQenterPipelineMode(conn_.get()) != 1) return lost_pipeline("cannot enter pipeline mode");
  std::vector<const char*> values;
  for (std::size_t i = 0; i < statements.size(); ++i) {
    const auto& st = statements[i];
    values.clear();
    for (const auto& p : st.params) values.push_back(p ? p->c_str() : nullptr);
    const int n = static_cast<int>(values.size());
    const int sent =
        names[i] ? PQsendQueryPrepared(conn_.get(), names[i]->c_str(), n, values.data(), nullptr, nullptr, 0)
                 : PQsendQueryParams(conn_.get(), st.text.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0);
    if (sent != 1) return lost_pipeline("cannot send a pipelined statement");
  }
  if (PQpipelineSync(conn_.get()) != 1) return lost_pipeline("cannot send a pipeline's sync");
  return Ok{};
}

Status Session::finish_pipeline(std::size_t& failed, PgResultPtr* rows) {
  std::optional<Error> first_error;
  std::size_t index = 0;
  bool between = true;  // libpq ends each statement's results with one NULL; two in a row: gone
  for (;;) {
    PgResultPtr res(PQgetResult(conn_.get()));
    if (!res) {
      if (between || PQstatus(conn_.get()) != CONNECTION_OK) {
        if (first_error) {
          broken_ = true;
          return std::move(*first_error);
        }
        return lost_pipeline("a pipeline's results were cut off");
      }
      between = true;
      continue;
    }
    between = false;
    const auto st = PQresultStatus(res.get());
    if (st == PGRES_PIPELINE_SYNC) break;
    if (st != PGRES_PIPELINE_ABORTED && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !first_error) {
      auto r = check(std::move(res), fmt::format("pipelined statement {}", index));
      if (!r) {
        failed = index;
        first_error = std::move(r).error();
      }
    } else if (st == PGRES_TUPLES_OK && rows != nullptr) {
      *rows = std::move(res);
    }
    ++index;
  }
  if (PQexitPipelineMode(conn_.get()) != 1) return lost_pipeline("cannot leave pipeline mode");
  if (first_error) return std::move(*first_error);  // last_sqlstate_ is its SQLSTATE (check)
  last_sqlstate_.clear();
  return Ok{};
}

}  // namespace pgferry
