#pragma once
// Test support: run the real server in-process on 127.0.0.1:0, talk to it
// over real loopback sockets, and run awaitables with a deadline so a hung
// coroutine fails a test instead of hanging CI.
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/config.hpp"
#include "gateway/app/instance.hpp"
#include "gateway/app/router.hpp"
#include "gateway/net/server.hpp"

namespace gateway::test {

// A pipeline with no outer layers, only `routes` (custom test servers).
inline std::unique_ptr<http::pipeline> pipeline_of(std::unique_ptr<app::router> routes) {
  return std::make_unique<http::pipeline>(http::layer_list{}, std::move(routes));
}

// A config for tests: loopback, port 0, 2 workers, short drain.
core::config test_config();

// Starts a server in-process; stops and joins it on destruction.
class running_server {
 public:
  // With `tls`, the listener speaks HTTPS (net::tls_terminator of cfg).
  explicit running_server(const core::config& cfg, const net::chain_factory& chain,
                          std::shared_ptr<net::tls_terminator> tls = nullptr);
  explicit running_server(const core::config& cfg);  // the whole gateway (app::instance)
  ~running_server();
  std::uint16_t port() const { return srv_->port(); }
  net::server& server() { return *srv_; }
  app::instance* app() { return app_.get(); }  // null for a custom chain
  void stop_and_wait();

 private:
  std::unique_ptr<app::instance> app_;
  net::server* srv_ = nullptr;
  std::unique_ptr<net::server> own_;
  bool stopped_ = false;
};

// Runs `task` on a private io_context; throws if it does not finish within `limit`.
void run_with_deadline(std::function<asio::awaitable<void>()> task, std::chrono::milliseconds limit);

// A parsed HTTP/1.1 response (Content-Length, chunked, or close-delimited).
struct http_response {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string header(std::string_view name) const;  // first match, case-insensitive; "" if none
  std::size_t count(std::string_view name) const;
};

// Blocking client over one TCP connection, with a receive timeout so a
// missing answer fails the test instead of hanging it.
class raw_client {
 public:
  explicit raw_client(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000),
                      const char* source_ip = nullptr);
  ~raw_client();
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  bool send(std::string_view bytes);  // false if the peer closed / reset
  // Reads one response. Empty optional on timeout, EOF or reset before a whole response.
  std::optional<http_response> read_response(bool head_request = false);
  // Reads until EOF/timeout and returns everything.
  std::string read_all();
  // True if the server closed the connection (EOF or reset) within the timeout.
  bool wait_closed();
  int fd() const { return fd_; }

 private:
  bool fill();  // reads more into buf_; false on EOF/error/timeout
  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  std::string buf_;
};

// One request, one response, on a fresh connection.
std::optional<http_response> http_request(std::uint16_t port, std::string_view raw_request);

// A gauge or a counter from the gateway's /metrics (JSON, "gauges" or
// "counters"), on a fresh connection; -1 if the request or the series is
// missing.
long long gauge(std::uint16_t port, std::string_view name);
long long counter(std::uint16_t port, std::string_view name);
// One series of a /metrics response (JSON) in the object `kind` ("gauges"
// or "counters"); -1 if there is no 200 response or no such series.
long long metric_in(const std::optional<http_response>& r, std::string_view kind, std::string_view name);

// Builds "METHOD target HTTP/1.1\r\nHost: test\r\n<extra>Content-Length: n\r\n\r\n<body>".
std::string make_request(std::string_view method, std::string_view target, std::string_view body = {},
                         std::string_view extra_headers = {});

// `in` compressed as one gzip member (RFC 1952) at zlib level `level`.
std::string gzip_bytes(std::string_view in, int level = 6);

// Resident set size of this process (bytes).
std::size_t rss_bytes();

// Under ASan/TSan, freed memory sits in the sanitizer's quarantine and
// shadow memory grows with every allocation, so RSS says nothing about the
// gateway's own memory. RSS bounds are asserted only in plain builds (CI
// runs both); sanitized builds still run the scenario for its other checks.
#if defined(GATEWAY_SANITIZED)
inline constexpr bool rss_checks_apply = false;
#else
inline constexpr bool rss_checks_apply = true;
#endif

// A loopback port free right now (programs that need a number in their
// configuration: redis-server, haproxy). The window between this close and
// their bind is short; a lost race fails loudly (the program cannot bind).
std::uint16_t free_loopback_port();

// Whether something accepts a TCP connection on the loopback port now.
bool accepts_connections(std::uint16_t port);

// haproxy from Debian's package (/usr/sbin is not on every PATH); empty
// when it is not installed.
std::string find_haproxy();

}  // namespace gateway::test
