#include "support/pg_client.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <utility>

namespace pgferry::test {
namespace {

struct ResultClear {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultClear>;

std::string describe_failure(PGconn* conn, const PGresult* res, const std::string& sql) {
  std::string message = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string out = "SQL failed";
  if (state != nullptr) out += std::string(" [") + state + "]";
  out += ": " + message + "  statement: " + sql.substr(0, 400);
  return out;
}

bool failed(const PGresult* res) {
  const auto status = PQresultStatus(res);
  return status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY;
}

}  // namespace

PgClient::PgClient(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    std::string message = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
    PQfinish(conn_);
    conn_ = nullptr;
    throw std::runtime_error("could not connect (" + conninfo + "): " + message);
  }
  // NOTICEs ("does not exist, skipping") are noise in test output.
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
}

PgClient::~PgClient() { PQfinish(conn_); }

PgClient::PgClient(PgClient&& other) noexcept : conn_(std::exchange(other.conn_, nullptr)) {}

PgClient& PgClient::operator=(PgClient&& other) noexcept {
  if (this != &other) {
    PQfinish(conn_);
    conn_ = std::exchange(other.conn_, nullptr);
  }
  return *this;
}

void PgClient::exec(const std::string& sql) {
  ResultPtr res(PQexec(conn_, sql.c_str()));
  if (res == nullptr || failed(res.get())) throw std::runtime_error(describe_failure(conn_, res.get(), sql));
}

std::vector<Row> PgClient::query(const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  ResultPtr res(
      PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
  if (res == nullptr || failed(res.get())) throw std::runtime_error(describe_failure(conn_, res.get(), sql));
  std::vector<Row> rows;
  const int n_rows = PQntuples(res.get());
  const int n_cols = PQnfields(res.get());
  rows.reserve(static_cast<std::size_t>(n_rows));
  for (int r = 0; r < n_rows; ++r) {
    Row row;
    row.reserve(static_cast<std::size_t>(n_cols));
    for (int c = 0; c < n_cols; ++c) {
      if (PQgetisnull(res.get(), r, c) != 0) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(
            std::string(PQgetvalue(res.get(), r, c), static_cast<std::size_t>(PQgetlength(res.get(), r, c))));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string PgClient::scalar(const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  auto rows = query(sql, params);
  if (rows.size() != 1 || rows[0].size() != 1) {
    throw std::runtime_error("expected one row with one column, got " + std::to_string(rows.size()) +
                             " rows: " + sql.substr(0, 400));
  }
  return rows[0][0].value_or("");
}

std::string PgClient::try_exec(const std::string& sql) {
  ResultPtr res(PQexec(conn_, sql.c_str()));
  if (res == nullptr) return "08000";
  if (!failed(res.get())) return "";
  const char* state = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE);
  return state != nullptr ? state : "XX000";
}

std::vector<std::string> PgClient::notifications(int wait_ms) {
  std::vector<std::string> channels;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    if (PQconsumeInput(conn_) == 0) throw std::runtime_error(std::string("connection lost: ") + PQerrorMessage(conn_));
    while (PGnotify* n = PQnotifies(conn_)) {
      channels.emplace_back(n->relname);
      PQfreemem(n);
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!channels.empty() || left.count() <= 0) return channels;
    pollfd pfd{PQsocket(conn_), POLLIN, 0};
    (void)::poll(&pfd, 1, static_cast<int>(left.count()));
  }
}

int PgClient::backend_pid() { return PQbackendPID(conn_); }

}  // namespace pgferry::test
