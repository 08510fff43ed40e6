#include "gateway/net/tls_stream.hpp"

#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <system_error>

#include "gateway/net/tls_context.hpp"
#include "tests/support/files.hpp"
#include "tests/support/tls_client.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// A server socket accepted on loopback and the client connected to it.
struct socket_pair {
  asio::io_context& io;
  asio::ip::tcp::socket client{io};
  asio::ip::tcp::socket server{io};
  explicit socket_pair(asio::io_context& c) : io(c) {
    asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    server = acceptor.accept();
  }
};

std::shared_ptr<const net::tls_context> test_context(const test::temp_dir& dir) {
  const std::string cert = dir.file("a.pem");
  const std::string key = dir.file("a.key");
  test::make_certificate({"localhost"}, cert, key);
  return net::tls_context::from_files({{cert, key}}, std::make_shared<net::tls_ticket_keys>(std::chrono::hours(1)));
}

// Runs `io` until `done` holds, at most 2,000 handlers or 5 s.
template <class Pred>
bool run_until(asio::io_context& io, Pred done) {
  const auto limit = std::chrono::steady_clock::now() + 5s;
  for (int i = 0; i < 2000 && !done() && std::chrono::steady_clock::now() < limit; ++i) io.run_one_for(10ms);
  return done();
}

}  // namespace

TEST_CASE("tls stream: the SSL object is made when the first bytes arrive, not at accept", "[unit][net]") {
  test::temp_dir dir;
  auto ctx = test_context(dir);
  asio::io_context io;
  socket_pair sockets(io);
  net::tls_stream stream(sockets.server, ctx);
  CHECK_FALSE(stream.ssl_made_for_test());

  std::optional<std::error_code> result;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { result = co_await stream.handshake(); }, asio::detached);
  // The handshake's receive is armed; with nothing sent, nothing more happens.
  io.poll();
  io.poll();
  CHECK_FALSE(stream.ssl_made_for_test());
  CHECK_FALSE(result.has_value());

  // The start of a ClientHello (a handshake record's header and a few of
  // its bytes): the stream makes its SSL object and waits for the rest.
  const std::string start("\x16\x03\x01\x01\x00\x01\x00\x00\xfc\x03\x03", 11);
  asio::write(sockets.client, asio::buffer(start));
  CHECK(run_until(io, [&] { return stream.ssl_made_for_test(); }));
  CHECK_FALSE(result.has_value());

  // The client goes away mid-handshake: the handshake ends with an error.
  sockets.client.close();
  REQUIRE(run_until(io, [&] { return result.has_value(); }));
  CHECK(*result);
}

TEST_CASE("tls stream: a client that closes before sending a byte ends the handshake with eof and no SSL object",
          "[unit][net]") {
  test::temp_dir dir;
  auto ctx = test_context(dir);
  asio::io_context io;
  socket_pair sockets(io);
  net::tls_stream stream(sockets.server, ctx);
  std::optional<std::error_code> result;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { result = co_await stream.handshake(); }, asio::detached);
  io.poll();
  sockets.client.close();
  REQUIRE(run_until(io, [&] { return result.has_value(); }));
  CHECK(*result == asio::error::eof);
  CHECK_FALSE(stream.ssl_made_for_test());
  CHECK_FALSE(stream.resumed());
  CHECK(stream.server_name().empty());
}
