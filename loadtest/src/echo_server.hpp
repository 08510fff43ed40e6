#pragma once
// A fast HTTP/1.1 keep-alive test backend: answers every request with a fixed,
// preformatted 200 response (or echoes the request body back), optionally
// after a fixed delay on a timer. Request bodies (Content-Length or chunked)
// are read and discarded; pipelined requests are answered in order.
//
// Threads: N workers, each with its own io_context and its own listening
// socket on the same port (SO_REUSEPORT lets the kernel spread connections).
// A connection lives on the worker that accepted it. The steady state does no
// heap allocation per request (per-connection buffers; echo mode reuses one
// body buffer per connection and gives it back when it grew past 1 MiB).
// See load_runner.hpp: GCC 12's -Wnull-dereference fires inside Asio's scheduler.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <asio/ip/tcp.hpp>
#pragma GCC diagnostic pop

#include <chrono>
#include <cstdint>
#include <memory>

namespace loadtest {

struct echo_options {
  asio::ip::tcp::endpoint listen{asio::ip::make_address_v4("127.0.0.1"), 0};
  unsigned threads = 1;
  std::uint64_t response_size = 2;  // body "ok"; longer bodies are "ok" then 'x's
  std::chrono::nanoseconds delay{0};
  bool echo = false;                        // answer with the request body instead
  std::uint64_t max_body = 64 * 1024 * 1024;  // echo mode: larger bodies get 413
};

class echo_server {
 public:
  // Binds and listens on every worker's socket (port 0 picks a free port).
  // Throws std::system_error when it cannot (start-up only).
  explicit echo_server(const echo_options& options);
  ~echo_server();
  echo_server(const echo_server&) = delete;
  echo_server& operator=(const echo_server&) = delete;

  asio::ip::tcp::endpoint local_endpoint() const;

  // Serves until stop() (or SIGINT/SIGTERM when handle_signals) on
  // options.threads threads, the calling thread being one of them. Returns
  // once every connection has closed and every worker thread has been joined.
  void run(bool handle_signals);

  // Stops accepting and closes every connection. Thread-safe, idempotent.
  void stop();

  // Requests answered; exact once run() has returned.
  std::uint64_t requests_served() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace loadtest
