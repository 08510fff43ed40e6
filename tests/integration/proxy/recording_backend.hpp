#pragma once
// A scriptable backend for the proxy tests, on 127.0.0.1:0 with a thread of
// its own. It records the exact bytes of every request it receives (head and
// Content-Length body) and answers as a script says: fixed bytes, a
// generated body of any size (written as the socket drains, never held in
// memory), then keep the connection, close it, reset it, or hang.
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gateway::test {

struct recorded_request {
  std::string raw;   // head + body, exactly as received
  std::string head;  // up to and including the blank line
  std::string body;
  std::string method;
  std::string target;
  std::size_t connection = 0;  // 1-based backend connection number
  std::size_t index_on_connection = 0;
};

struct reply {
  enum class then { keep_open, close, reset, hang };
  std::string bytes;                 // written first, as is
  std::uint64_t generated_body = 0;  // then this many bytes of pattern_byte(i)
  then after = then::keep_open;
  std::chrono::nanoseconds delay{0};  // waited before anything is written (other connections go on meanwhile)
  // A misbehaving backend: once the reply is written, this long is waited,
  // then `late_bytes` are written (in a segment of their own) before
  // `after` is applied; late_actions() counts the replies that got this far.
  std::chrono::nanoseconds late_delay{0};
  std::string late_bytes{};
};

// Byte i of a generated body (period 251, so misplaced blocks are caught).
inline char pattern_byte(std::uint64_t i) noexcept { return static_cast<char>(i % 251); }

// "HTTP/1.1 200 OK\r\nContent-Length: N\r\n\r\n<body>".
std::string ok_response(std::string_view body, std::string_view extra_headers = {});

class recording_backend {
 public:
  using script = std::function<reply(const recorded_request&)>;

  recording_backend();  // answers ok_response("ok") until set_script
  ~recording_backend();
  recording_backend(const recording_backend&) = delete;
  recording_backend& operator=(const recording_backend&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void set_script(script s);
  // Off: requests are answered and counted but not kept (for long soaks).
  void set_recording(bool on) {
    std::lock_guard lock(mu_);
    recording_ = on;
  }
  std::vector<recorded_request> requests() const;
  std::size_t request_count() const;
  std::size_t connections_accepted() const noexcept { return accepted_.load(); }
  std::size_t open_connections() const noexcept { return open_.load(); }
  // Replies whose late_delay has passed and whose late bytes were written
  // (and, with then::close, whose FIN was sent).
  std::size_t late_actions() const noexcept { return late_.load(); }
  void stop();

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::ip::tcp::socket s, std::size_t id);
  asio::awaitable<bool> send_generated(asio::ip::tcp::socket& s, std::uint64_t n);

  asio::io_context io_{1};
  asio::ip::tcp::acceptor acceptor_{io_};
  std::list<asio::ip::tcp::socket*> sockets_;  // io thread only
  bool stopping_ = false;                      // io thread only
  mutable std::mutex mu_;
  script script_;
  std::vector<recorded_request> requests_;
  bool recording_ = true;      // guarded by mu_
  std::uint64_t counted_ = 0;  // guarded by mu_
  std::atomic<std::size_t> accepted_{0};
  std::atomic<std::size_t> open_{0};
  std::atomic<std::size_t> late_{0};
  std::uint16_t port_ = 0;
  std::jthread thread_;
};

// A loopback port nothing listens on (bound, then closed).
std::uint16_t closed_port();

}  // namespace gateway::test
