// Cancelling operations on an io_context that has already run tens of
// thousands of operations must not touch any other operation. On the
// io_uring backend (GATEWAY_IO_URING) all 16,384 submission slots of the
// ring have then been used, and a cancellation submitted with its slot's
// earlier user_data (Asio 1.22 with liburing 2.3; see
// gateway/net/io_uring_sqe_fix.hpp) completes whichever operation that
// user_data names: here another socket's pending read, which then ends with
// end-of-stream although its peer sent nothing and is still open. On epoll
// the same sequence checks plain cancellation.
#include <catch2/catch.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "tests/support/test_server.hpp"

using namespace std::chrono_literals;

TEST_CASE("after 40,000 operations on an io_context, 300 cancelled reads end aborted and leave another socket's read alone",
          "[unit][net]") {
  constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);
  int round_trips = 0, aborted = 0, wrong_cancel = 0;
  bool other_done_early = false;
  std::error_code other_ec = asio::error::would_block;
  std::size_t other_n = 0;
  char other_buf[16] = {};
  gateway::test::run_with_deadline(
      [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        asio::ip::tcp::acceptor acceptor(ex, {asio::ip::address_v4::loopback(), 0});
        asio::ip::tcp::socket a(ex), b(ex);
        co_await a.async_connect(acceptor.local_endpoint(), asio::use_awaitable);
        b = co_await acceptor.async_accept(asio::use_awaitable);
        // 20,000 round trips from a to b: 40,000 submissions, the slots
        // alternately last used by a's writes and b's reads.
        char out = 'x', in = 0;
        for (int i = 0; i < 20000; ++i) {
          auto [we, wn] = co_await asio::async_write(a, asio::buffer(&out, 1), nothrow);
          auto [re, rn] = co_await asio::async_read(b, asio::buffer(&in, 1), nothrow);
          if (we || re || wn != 1 || rn != 1 || in != out) break;
          ++round_trips;
        }
        // b waits for a byte that comes only at the end.
        b.async_read_some(asio::buffer(other_buf), [&](std::error_code e, std::size_t n) {
          other_ec = e;
          other_n = n;
        });
        char buf[16];
        for (int i = 0; i < 300; ++i) {
          // One more submission every other round, so the cancellations land
          // on slots last used by either socket.
          if (i % 2 == 1) co_await a.async_wait(asio::socket_base::wait_write, nothrow);
          asio::post(ex, [&a] { a.cancel(); });  // runs once the read below is pending
          auto [ce, cn] = co_await a.async_read_some(asio::buffer(buf), nothrow);
          if (ce == asio::error::operation_aborted && cn == 0) ++aborted;
          else ++wrong_cancel;
        }
        other_done_early = other_ec != asio::error::would_block;
        out = 'z';
        co_await asio::async_write(a, asio::buffer(&out, 1), nothrow);
        // b's read completes with the byte; the sockets stay open until it has
        // (closing b under its pending read would abort it).
        for (int k = 0; k < 10000 && other_ec == asio::error::would_block; ++k)
          co_await asio::post(ex, asio::use_awaitable);
      },
      60s);
  CHECK(round_trips == 20000);
  CHECK(aborted == 300);
  CHECK(wrong_cancel == 0);
  INFO("b's read: " << other_ec.message() << ", " << other_n << " bytes");
  CHECK_FALSE(other_done_early);
  CHECK_FALSE(other_ec);
  CHECK(other_n == 1);
  CHECK(other_buf[0] == 'z');
}
