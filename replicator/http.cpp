#include "http.hpp"

#include <civetweb.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace pgferry {
namespace {

void reply(mg_connection* conn, int code, const char* content_type, const std::string& body) {
  const char* reason = code == 200   ? "OK"
                       : code == 404 ? "Not Found"
                       : code == 405 ? "Method Not Allowed"
                                     : "Service Unavailable";
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n",
            code, reason, content_type, body.size());
  mg_write(conn, body.data(), body.size());
}

constexpr const char* kJson = "application/json";

int handle(mg_connection* conn, void* data) {
  const auto& h = *static_cast<const HttpServer::Handlers*>(data);
  const mg_request_info* req = mg_get_request_info(conn);
  const std::string_view method = req->request_method != nullptr ? req->request_method : "";
  const std::string_view uri = req->local_uri != nullptr ? req->local_uri : "";
  if (method != "GET" && method != "HEAD") {
    reply(conn, 405, kJson, R"({"error":"only GET"})");
    return 405;
  }
  try {
    if (uri == "/metrics") {
      reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", h.metrics());
      return 200;
    }
    if (uri == "/healthz") {
      if (h.loop_alive()) {
        reply(conn, 200, kJson, R"({"alive":true})");
        return 200;
      }
      reply(conn, 503, kJson, R"({"alive":false,"detail":"the replication event loop did not answer within 1 s"})");
      return 503;
    }
    if (uri == "/readyz") {
      const auto [ready, body] = h.readiness();
      reply(conn, ready ? 200 : 503, kJson, body);
      return ready ? 200 : 503;
    }
    if (uri == "/status") {
      reply(conn, 200, kJson, h.status());
      return 200;
    }
    if (uri == "/") {
      reply(conn, 200, "text/plain; charset=utf-8",
            "pgferry: /metrics (Prometheus), /healthz (alive), /readyz (ready to serve reads), /status (JSON)\n");
      return 200;
    }
  } catch (const std::exception& e) {
    spdlog::error("HTTP {}: {}", uri, e.what());
    reply(conn, 503, kJson, fmt::format(R"({{"error":"internal error"}})"));
    return 503;
  }
  reply(conn, 404, kJson, R"({"error":"not found; try /metrics, /healthz, /readyz or /status"})");
  return 404;
}

int log_message(const mg_connection* /*conn*/, const char* message) {
  spdlog::warn("HTTP server: {}", message);
  return 1;
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& listen, Handlers handlers) {
  static const unsigned init = mg_init_library(0);
  (void)init;
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->handlers_ = std::move(handlers);
  // civetweb writes IPv6 listen addresses as [::1]:9187, like http.listen.
  const char* options[] = {"listening_ports", listen.c_str(),      "num_threads", "4",    "request_timeout_ms",
                           "10000",           "enable_keep_alive", "no",          nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = log_message;
  mg_init_data init_data{};
  init_data.callbacks = &callbacks;
  init_data.user_data = s.get();
  init_data.configuration_options = options;
  char error_text[256] = {};
  mg_error_data error{};
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  s->ctx_ = mg_start2(&init_data, &error);
  if (s->ctx_ == nullptr) {
    return runtime_error("http.listen", fmt::format("cannot listen on {}: {}", listen, error_text),
                         "choose a free host:port in http.listen (or PGFERRY_HTTP_LISTEN); port 0 picks one");
  }
  for (const char* path : {"/metrics$", "/healthz$", "/readyz$", "/status$", "/$"}) {
    mg_set_request_handler(s->ctx_, path, handle, &s->handlers_);
  }
  mg_server_port ports[4] = {};
  if (mg_get_server_ports(s->ctx_, 4, ports) > 0) s->port_ = ports[0].port;
  const auto colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host == "0.0.0.0") host = "127.0.0.1";
  s->url_ = fmt::format("http://{}:{}", host, s->port_);
  return s;
}

HttpServer::~HttpServer() {
  if (ctx_ != nullptr) mg_stop(ctx_);
}

}  // namespace pgferry
