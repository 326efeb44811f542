#pragma once
// The one HTTP port of `run` (http.listen): /metrics, /healthz, /readyz, /status. civetweb
// serves it on its own threads, so a request never waits for the replication loop (a scrape
// during a 1,000,000-row batch answers at once) and the loop never waits for a slow client.

#include <functional>
#include <memory>
#include <string>

#include "result.hpp"

struct mg_context;

namespace pgferry {

class HttpServer {
 public:
  struct Handlers {
    std::function<std::string()> metrics;                     // Prometheus text exposition
    std::function<bool()> loop_alive;                         // whether the event loop answers (for /healthz)
    std::function<std::string()> status;                      // /status JSON
    std::function<std::pair<bool, std::string>()> readiness;  // ready?, /readyz JSON
  };

  /// Listens on `listen` (host:port; port 0 picks a free one). A port that cannot be bound is a
  /// runtime error naming it and how to choose another.
  static Result<std::unique_ptr<HttpServer>> start(const std::string& listen, Handlers handlers);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// The port it listens on (the chosen one when configured with port 0).
  [[nodiscard]] int port() const noexcept { return port_; }
  /// http://host:port, for the log.
  [[nodiscard]] const std::string& url() const noexcept { return url_; }

 private:
  HttpServer() = default;
  mg_context* ctx_ = nullptr;
  Handlers handlers_;
  int port_ = 0;
  std::string url_;
};

}  // namespace pgferry
