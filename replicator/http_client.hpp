#pragma once
// A minimal blocking HTTP/1.1 client over POSIX sockets, for `pgferry status` asking a running
// pgferry for its /status. One GET per connection ("Connection: close"), bounded by a timeout; no
// TLS, no redirects, no keep-alive: the only server it talks to is pgferry's own.

#include <chrono>
#include <string>
#include <string_view>

#include "result.hpp"

namespace pgferry {

/// What the server answered: the status code and the body (chunked transfer coding removed).
struct HttpResponse {
  int status = 0;
  std::string body;
};

/// Where to connect for a listen address: host and port as getaddrinfo() takes them.
struct HttpAddress {
  std::string host;  // 127.0.0.1, ::1, localhost (no brackets)
  std::string port;  // decimal
  /// host:port for messages and the Host header, with brackets around an IPv6 host.
  [[nodiscard]] std::string display() const;
};

/// The address a client connects to for the listen address `listen` (host:port or [v6]:port).
/// A wildcard or empty host (0.0.0.0, [::], "") means this machine: 127.0.0.1 or ::1. Port 0 is
/// refused: a server told to pick a free port logs the one it picked, and that one must be named.
[[nodiscard]] Result<HttpAddress> http_connect_address(std::string_view listen);

/// GETs `path` from `host_port` (a listen address, see http_connect_address). `timeout` bounds
/// the whole exchange: connecting, sending and reading the answer. Fails (ErrorKind::Runtime,
/// where = the URL) when nothing listens, nothing answers in time, or the answer is not HTTP;
/// fails with ErrorKind::Config when `host_port` is not an address.
[[nodiscard]] Result<HttpResponse> http_get(const std::string& host_port, const std::string& path,
                                            std::chrono::milliseconds timeout);

}  // namespace pgferry
