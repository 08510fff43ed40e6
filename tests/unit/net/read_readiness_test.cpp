#include "gateway/net/read_readiness.hpp"

#include <catch2/catch.hpp>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <array>
#include <chrono>
#include <optional>
#include <string>

namespace net = gateway::net;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// A loopback connection: `server` is read with Asio on `io` (one thread, as
// a worker's), `peer` writes blocking.
struct socket_pair {
  asio::io_context io{1};
  tcp::socket server{io};
  asio::io_context peer_io;
  tcp::socket peer{peer_io};

  socket_pair() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    peer.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
  void send(const std::string& bytes) { asio::write(peer, asio::buffer(bytes)); }
};

// One read of up to buf.size() bytes; completes into `result`.
struct pending_read {
  std::array<char, 64> buf{};
  std::optional<std::pair<std::error_code, std::size_t>> result;
  void start(tcp::socket& s) {
    s.async_read_some(asio::buffer(buf), [this](std::error_code ec, std::size_t n) { result.emplace(ec, n); });
  }
  std::string text() const { return std::string(buf.data(), result ? result->second : 0); }
};

// Runs `io` until `r` completes or `limit` passes (each turn bounded).
void run_until(asio::io_context& io, const pending_read& r, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!r.result && std::chrono::steady_clock::now() < end) {
    io.run_for(10ms);
    io.restart();
  }
}

// Lets the event loop wait for epoll for `d` with nothing else to do (a
// timer keeps it from returning at once), so readiness events it reports
// are handled now.
void spin(asio::io_context& io, std::chrono::milliseconds d) {
  asio::steady_timer t(io, d);
  t.async_wait([](std::error_code) {});
  io.run();
  io.restart();
}

// A short read, then the mark, as the session and the proxy do.
void short_read_and_mark(socket_pair& p) {
  p.send("first");
  pending_read r;
  r.start(p.server);
  run_until(p.io, r, 2s);
  REQUIRE(r.result);
  REQUIRE_FALSE(r.result->first);
  REQUIRE(r.text() == "first");
  net::note_read(p.server, r.result->second, r.buf.size());
}

}  // namespace

TEST_CASE("after a short read and the mark, bytes the peer sends later are read", "[unit][net]") {
  socket_pair p;
  short_read_and_mark(p);
  pending_read next;
  next.start(p.server);
  p.io.poll();
  p.io.restart();
  CHECK_FALSE(next.result);  // nothing sent yet
  p.send("second");
  run_until(p.io, next, 2s);
  REQUIRE(next.result);
  CHECK_FALSE(next.result->first);
  CHECK(next.text() == "second");
}

TEST_CASE("bytes that arrive between a marked short read and the next read are not missed", "[unit][net]") {
  socket_pair p;
  short_read_and_mark(p);
  p.send("between");
  // The event loop sees the socket readable with no read pending: the
  // reactor clears the mark, so the next read tries the socket at once.
  spin(p.io, 20ms);
  pending_read next;
  next.start(p.server);
  run_until(p.io, next, 2s);
  REQUIRE(next.result);
  CHECK_FALSE(next.result->first);
  CHECK(next.text() == "between");
}

TEST_CASE("a marked socket's next read waits for epoll instead of trying the socket first", "[unit][net]") {
  // Shown by breaking the contract on purpose: the mark set after the event
  // loop has already reported the bytes. With the mark the read is not tried
  // until the next readiness event (more bytes); without it (another Asio
  // backend) the read finds the bytes at once.
  socket_pair p;
  short_read_and_mark(p);
  p.send("queued");
  spin(p.io, 20ms);
  net::mark_read_drained(p.server);
  pending_read next;
  next.start(p.server);
  run_until(p.io, next, 100ms);
  if constexpr (net::read_marks_supported) {
    CHECK_FALSE(next.result);
    p.send("+more");
    run_until(p.io, next, 2s);
    REQUIRE(next.result);
    CHECK(next.text() == "queued+more");
  } else {
    REQUIRE(next.result);
    CHECK(next.text() == "queued");
  }
}

TEST_CASE("marking a closed socket does nothing", "[unit][net]") {
  asio::io_context io{1};
  tcp::socket never_opened(io);
  net::mark_read_drained(never_opened);
  CHECK_FALSE(never_opened.is_open());
}
