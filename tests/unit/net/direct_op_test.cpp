// net/direct_op.hpp: a socket operation awaited without a coroutine frame of
// its own delivers its result into the awaiting coroutine's variable, obeys
// the coroutine's cancellation slot, and a coroutine left waiting on one is
// destroyed with its io_context.
#include "gateway/net/direct_op.hpp"

#include <catch2/catch.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <array>
#include <chrono>
#include <string>

#include "tests/support/test_server.hpp"

using namespace std::chrono_literals;
namespace net = gateway::net;

namespace {

struct socket_pair {
  explicit socket_pair(const asio::any_io_executor& ex)
      : acceptor(ex, {asio::ip::address_v4::loopback(), 0}), a(ex), b(ex) {
    a.connect(acceptor.local_endpoint());
    b = acceptor.accept();
  }
  asio::ip::tcp::acceptor acceptor;
  asio::ip::tcp::socket a, b;
};

// Sets `flag` when destroyed: lives in a coroutine frame to show that the
// frame went.
struct destroyed_flag {
  bool& flag;
  ~destroyed_flag() { flag = true; }
};

}  // namespace

TEST_CASE("a direct write and read deliver their byte counts and data, and end of stream, into the coroutine's variables",
          "[unit][net]") {
  std::size_t written = 0, read = 0;
  std::string got;
  std::error_code write_ec = asio::error::would_block, read_ec = asio::error::would_block,
                  eof_ec = asio::error::would_block;
  gateway::test::run_with_deadline(
      [&]() -> asio::awaitable<void> {
        socket_pair p(co_await asio::this_coro::executor);
        const std::array<asio::const_buffer, 2> out{asio::buffer(std::string_view("hello, ")),
                                                    asio::buffer(std::string_view("direct"))};
        net::io_result r;
        co_await net::direct(r, [&](net::direct_handler h) { asio::async_write(p.a, out, std::move(h)); });
        std::tie(write_ec, written) = r;
        std::array<char, 64> in{};
        while (got.size() < 13) {
          co_await net::direct(
              r, [&](net::direct_handler h) { p.b.async_read_some(asio::buffer(in), std::move(h)); });
          std::tie(read_ec, read) = r;
          if (read_ec) break;
          got.append(in.data(), read);
        }
        p.a.shutdown(asio::ip::tcp::socket::shutdown_send);
        co_await net::direct(r, [&](net::direct_handler h) { p.b.async_read_some(asio::buffer(in), std::move(h)); });
        eof_ec = std::get<0>(r);
      },
      5000ms);
  CHECK_FALSE(write_ec);
  CHECK(written == 13);
  CHECK_FALSE(read_ec);
  CHECK(got == "hello, direct");
  CHECK(eof_ec == asio::error::eof);
}

TEST_CASE("a terminal cancellation ends a pending direct read with operation_aborted and the coroutine goes on",
          "[unit][net]") {
  asio::io_context io;
  socket_pair p(io.get_executor());
  asio::cancellation_signal signal;
  std::error_code ec = asio::error::would_block;
  bool continued = false, finished = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // As serve_connection does: later awaits go on after a cancellation.
        co_await asio::this_coro::throw_if_cancelled(false);
        std::array<char, 16> in{};
        net::io_result r;
        co_await net::direct(r, [&](net::direct_handler h) { p.b.async_read_some(asio::buffer(in), std::move(h)); });
        ec = std::get<0>(r);
        // The coroutine is resumed normally: it can await again.
        co_await asio::post(io, asio::use_awaitable);
        continued = true;
      },
      asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { finished = !e; }));
  // Bounded: the read is pending once the spawned coroutine has run.
  for (int i = 0; i < 100 && io.poll() > 0; ++i) {
  }
  REQUIRE(ec == asio::error::would_block);
  signal.emit(asio::cancellation_type::terminal);
  io.run_for(2s);
  CHECK(ec == asio::error::operation_aborted);
  CHECK(continued);
  CHECK(finished);
}

TEST_CASE("a coroutine left waiting on a direct read is destroyed with its io_context, as with use_awaitable",
          "[unit][net]") {
  bool direct_frame_gone = false, awaitable_frame_gone = false;
  {
    asio::io_context io;
    socket_pair p(io.get_executor());
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          destroyed_flag f{direct_frame_gone};
          std::array<char, 16> in{};
          net::io_result r;
          co_await net::direct(r, [&](net::direct_handler h) { p.b.async_read_some(asio::buffer(in), std::move(h)); });
        },
        asio::detached);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          destroyed_flag f{awaitable_frame_gone};
          std::array<char, 16> in{};
          co_await p.a.async_read_some(asio::buffer(in), asio::use_awaitable);
        },
        asio::detached);
    for (int i = 0; i < 100 && io.poll() > 0; ++i) {
    }
    REQUIRE_FALSE(direct_frame_gone);
    REQUIRE_FALSE(awaitable_frame_gone);
  }
  CHECK(awaitable_frame_gone);
  CHECK(direct_frame_gone);
}
