#include "http_client.hpp"

#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include "config.hpp"

namespace pgferry {
namespace {

using Clock = std::chrono::steady_clock;

// pgferry's /status is a few kilobytes; anything this large is not it.
constexpr std::size_t kMaxResponseBytes = std::size_t{16} << 20;

/// A socket closed on destruction.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&&) = delete;
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  int fd_;
};

/// Milliseconds left until `deadline` for poll(), 0 once it passed.
int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>(left, INT_MAX));
}

/// Waits until `fd` is ready for `events` or `deadline` passes: the revents, 0 on timeout, -1 on
/// a poll() failure (errno says which).
int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    return n <= 0 ? n : p.revents;
  }
}

std::string errno_text(int err) { return std::strerror(err); }  // NOLINT(concurrency-mt-unsafe)

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

/// The head of an answer: status code and the two headers that say where the body ends.
struct Head {
  int status = 0;
  std::optional<std::size_t> content_length;
  bool chunked = false;
  std::size_t body_offset = 0;  // where the body starts in the raw answer
};

/// Parses the status line and headers of `raw`; nullopt while they are incomplete.
Result<std::optional<Head>> parse_head(std::string_view raw, const std::string& where) {
  auto end = raw.find("\r\n\r\n");
  std::size_t sep = 4;
  if (end == std::string_view::npos) {
    end = raw.find("\n\n");
    sep = 2;
  }
  const auto not_http = [&] {
    return runtime_error(where, "the answer is not HTTP",
                         "is the program listening on http.listen a pgferry? (`pgferry run` serves /status there)");
  };
  if (end == std::string_view::npos) {
    // A server that speaks HTTP starts with "HTTP/": say so early rather than wait for a header end.
    const std::string_view prefix = "HTTP/";
    if (raw.substr(0, std::min(raw.size(), prefix.size())) != prefix.substr(0, std::min(raw.size(), prefix.size()))) {
      return not_http();
    }
    return std::optional<Head>();
  }
  Head head;
  head.body_offset = end + sep;
  std::string_view rest = raw.substr(0, end);
  auto next_line = [&]() {
    const auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    return trim(line);
  };
  const std::string_view status_line = next_line();
  // "HTTP/1.1 200 OK"
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') return not_http();
  int code = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (status_line[i] < '0' || status_line[i] > '9') return not_http();
    code = code * 10 + (status_line[i] - '0');
  }
  head.status = code;
  while (!rest.empty()) {
    const std::string_view line = next_line();
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = trim(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "content-length")) {
      std::size_t n = 0;
      if (value.empty() || value.size() > 12 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return runtime_error(where, fmt::format("the answer has an invalid Content-Length '{}'", value));
      }
      for (char c : value) n = n * 10 + static_cast<std::size_t>(c - '0');
      head.content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      // The last coding applied is the one that frames the body.
      const auto comma = value.rfind(',');
      head.chunked = iequals(trim(comma == std::string_view::npos ? value : value.substr(comma + 1)), "chunked");
    }
  }
  return std::optional<Head>(head);
}

enum class Chunked : std::uint8_t { Complete, Incomplete, Invalid };

/// Decodes a chunked body (RFC 9112 section 7.1) into `out`; trailers are skipped.
Chunked decode_chunked(std::string_view in, std::string& out) {
  out.clear();
  std::size_t pos = 0;
  for (;;) {
    const auto eol = in.find('\n', pos);
    if (eol == std::string_view::npos) return Chunked::Incomplete;
    std::string_view size_line = trim(in.substr(pos, eol - pos));
    if (const auto semi = size_line.find(';'); semi != std::string_view::npos)
      size_line = trim(size_line.substr(0, semi));
    if (size_line.empty() || size_line.size() > 15) return Chunked::Invalid;
    std::size_t size = 0;
    for (char c : size_line) {
      const int digit = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
      if (digit < 0) return Chunked::Invalid;
      size = size * 16 + static_cast<std::size_t>(digit);
    }
    pos = eol + 1;
    if (size == 0) {
      // Trailer fields, then an empty line.
      for (;;) {
        const auto end = in.find('\n', pos);
        if (end == std::string_view::npos) return Chunked::Incomplete;
        const bool empty = trim(in.substr(pos, end - pos)).empty();
        pos = end + 1;
        if (empty) return Chunked::Complete;
      }
    }
    if (in.size() - pos < size) return Chunked::Incomplete;
    out.append(in.substr(pos, size));
    pos += size;
    // The CRLF after the chunk data.
    if (in.size() - pos < 2) return Chunked::Incomplete;
    if (in.substr(pos, 2) == "\r\n") {
      pos += 2;
    } else if (in[pos] == '\n') {
      pos += 1;
    } else {
      return Chunked::Invalid;
    }
  }
}

/// Connects to one resolved address before `deadline`.
Result<Socket> connect_one(const addrinfo& ai, const std::string& shown, std::chrono::milliseconds timeout,
                           Clock::time_point deadline) {
  Socket s(::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
  if (s.fd() < 0) {
    return runtime_error({}, fmt::format("cannot open a socket to connect to {}: {}", shown, errno_text(errno)));
  }
  int err = 0;
  if (::connect(s.fd(), ai.ai_addr, ai.ai_addrlen) != 0) {
    err = errno;
    if (err == EINPROGRESS || err == EINTR) {
      const int ready = wait_for(s.fd(), POLLOUT, deadline);
      if (ready == 0) {
        return runtime_error({}, fmt::format("no connection to {} within {} (a firewall dropping packets, or a "
                                             "host that is down)",
                                             shown, format_duration(timeout)));
      }
      if (ready < 0) return runtime_error({}, fmt::format("cannot connect to {}: {}", shown, errno_text(errno)));
      socklen_t len = sizeof err;
      if (::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
  }
  if (err == ECONNREFUSED) return runtime_error({}, fmt::format("nothing listens on {} (connection refused)", shown));
  if (err != 0) return runtime_error({}, fmt::format("cannot connect to {}: {}", shown, errno_text(err)));
  return s;
}

}  // namespace

std::string HttpAddress::display() const {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + port : host + ":" + port;
}

Result<HttpAddress> http_connect_address(std::string_view listen) {
  const auto bad = [&](std::string_view why) {
    return config_error("http.listen", fmt::format("'{}' {}", listen, why),
                        "e.g. 127.0.0.1:9187, 0.0.0.0:9187 or [::1]:9187");
  };
  HttpAddress a;
  std::string_view port;
  if (listen.starts_with("[")) {
    const auto close = listen.find(']');
    if (close == std::string_view::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return bad("is not [host]:port");
    }
    a.host = std::string(listen.substr(1, close - 1));
    port = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string_view::npos) return bad("is not host:port");
    a.host = std::string(listen.substr(0, colon));
    if (a.host.find(':') != std::string::npos) return bad("has an IPv6 host without brackets");
    port = listen.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("has no valid port");
  }
  const int number = std::stoi(std::string(port));
  if (number > 65535) return bad("has a port above 65535");
  if (number == 0) {
    return config_error("http.listen",
                        fmt::format("'{}' has port 0: `pgferry run` picks a free port and logs it, and there is no "
                                    "way to know it from here",
                                    listen),
                        "set http.listen to the port `pgferry run` logged (or give it a fixed port)");
  }
  a.port = std::to_string(number);
  // A server listening on every address answers on loopback too.
  if (a.host.empty() || a.host == "0.0.0.0" || a.host == "*") a.host = "127.0.0.1";
  if (a.host == "::" || a.host == "::0") a.host = "::1";
  return a;
}

Result<HttpResponse> http_get(const std::string& host_port, const std::string& path,
                              std::chrono::milliseconds timeout) {
  auto address = http_connect_address(host_port);
  if (!address) return std::move(address).error();
  const std::string shown = address->display();
  const std::string url = fmt::format("http://{}{}", shown, path);
  const auto deadline = Clock::now() + timeout;
  const auto located = [&](Error e) {
    e.where = url;
    return e;
  };

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(address->host.c_str(), address->port.c_str(), &hints, &found); rc != 0) {
    return runtime_error(url, fmt::format("cannot resolve '{}': {}", address->host, ::gai_strerror(rc)),
                         "check the host in http.listen");
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);

  // Every address the name resolves to, in order; the first error is the one reported.
  std::optional<Socket> socket;
  std::optional<Error> first_error;
  for (const addrinfo* ai = addresses.get(); ai != nullptr && !socket; ai = ai->ai_next) {
    auto s = connect_one(*ai, shown, timeout, deadline);
    if (s) {
      socket.emplace(std::move(*s));
    } else if (!first_error) {
      first_error = std::move(s).error();
    }
  }
  if (!socket) return located(first_error ? *first_error : runtime_error({}, "no address to connect to"));

  const std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pgferry/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
      path, shown, PGFERRY_VERSION);
  for (std::size_t sent = 0; sent < request.size();) {
    const auto n = ::send(socket->fd(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return runtime_error(url, fmt::format("cannot send the request to {}: {}", shown, errno_text(errno)));
    }
    const int ready = wait_for(socket->fd(), POLLOUT, deadline);
    if (ready == 0) {
      return runtime_error(url, fmt::format("{} did not take the request within {}", shown, format_duration(timeout)));
    }
    if (ready < 0) return runtime_error(url, fmt::format("cannot send the request: {}", errno_text(errno)));
  }

  std::string raw;
  std::optional<Head> head;
  HttpResponse response;
  char buffer[16384];
  for (;;) {
    // Done as soon as the body is complete: a server that keeps the connection open is not waited for.
    if (!head) {
      auto h = parse_head(raw, url);
      if (!h) return std::move(h).error();
      head = *h;
    }
    if (head) {
      const std::string_view body = std::string_view(raw).substr(head->body_offset);
      if (head->chunked) {
        const auto state = decode_chunked(body, response.body);
        if (state == Chunked::Invalid) return runtime_error(url, "the answer's chunked body is malformed");
        if (state == Chunked::Complete) break;
      } else if (head->content_length && body.size() >= *head->content_length) {
        response.body = std::string(body.substr(0, *head->content_length));
        break;
      }
    }
    const int ready = wait_for(socket->fd(), POLLIN, deadline);
    if (ready == 0) {
      return runtime_error(
          url, fmt::format("{} accepted the connection but did not answer within {}", shown, format_duration(timeout)),
          "is the program listening on http.listen a pgferry? (a stuck `pgferry run` answers slowly: "
          "try --timeout 10s)");
    }
    if (ready < 0) return runtime_error(url, fmt::format("cannot read the answer: {}", errno_text(errno)));
    const auto n = ::recv(socket->fd(), buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (errno == ECONNRESET && raw.empty()) {
        return runtime_error(url, fmt::format("{} closed the connection without answering", shown));
      }
      return runtime_error(url, fmt::format("cannot read the answer: {}", errno_text(errno)));
    }
    if (n == 0) {
      // The server closed the connection: the answer ends here.
      if (raw.empty()) return runtime_error(url, fmt::format("{} closed the connection without answering", shown));
      if (!head) return runtime_error(url, "the answer is not HTTP (it ends before its headers do)");
      const std::string_view body = std::string_view(raw).substr(head->body_offset);
      if (head->chunked) return runtime_error(url, "the answer ends in the middle of its chunked body");
      if (head->content_length) {
        return runtime_error(url, fmt::format("the answer was cut short: {} of the {} bytes of its body arrived",
                                              body.size(), *head->content_length));
      }
      response.body = std::string(body);
      break;
    }
    raw.append(buffer, static_cast<std::size_t>(n));
    if (raw.size() > kMaxResponseBytes) {
      return runtime_error(
          url, fmt::format("the answer is larger than {} MB, which /status never is", kMaxResponseBytes >> 20));
    }
  }
  response.status = head->status;
  return response;
}

}  // namespace pgferry
