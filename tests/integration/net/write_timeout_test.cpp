// --write-timeout is a timeout on progress (as nginx's send_timeout and
// HAProxy's timeout client): a client that reads a large response slowly
// but steadily gets all of it, one that stops reading is cut, and a cut
// response ends with a reset, never with the clean end of a complete one.
// The gateway runs in-process, plain and over TLS.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "gateway/app/router.hpp"
#include "gateway/net/tls_context.hpp"
#include "tests/integration/proxy/proxy_fixture.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/files.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/tls_client.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t big_size = 12u << 20;

// GET /big answers big_size bytes of test::pattern_byte in one response.
class big_handler final : public http::layer {
 public:
  http::step enter(http::exchange& ex, http::layer_state&) override {
    std::string body(big_size, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = test::pattern_byte(i);
    http::respond_text(ex, 200, body);
    return http::step::answered;
  }
};

net::chain_factory big_chain() {
  return [](net::worker_env&) {
    auto r = std::make_unique<app::router>();
    r->add_exact("/big", std::make_unique<big_handler>());
    return test::pipeline_of(std::move(r));
  };
}

struct read_result {
  std::size_t bytes = 0;  // raw bytes received
  bool clean_end = false;  // end of stream (FIN)
  int error = 0;           // errno of the failed receive that ended it, 0 if none
};

// Reads `fd` at about `rate` bytes per second (at most 64 KiB at a time,
// never pausing for long), until the peer ends the stream or `limit`
// passes.
read_result read_steadily(int fd, std::size_t rate, std::chrono::milliseconds limit) {
  read_result r;
  const auto start = std::chrono::steady_clock::now();
  std::string buf(64 * 1024, '\0');
  while (std::chrono::steady_clock::now() - start < limit) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf.data(), std::min(buf.size(), rate / 16), 0);
    if (n == 0) {
      r.clean_end = true;
      break;
    }
    if (n < 0) {
      r.error = errno;
      break;
    }
    r.bytes += static_cast<std::size_t>(n);
    // Pace: byte k is taken no earlier than k / rate seconds after start.
    const auto due = start + std::chrono::microseconds(r.bytes * 1000000ull / rate);
    std::this_thread::sleep_until(due);
  }
  return r;
}

void shrink_receive_buffer(int fd) {
  const int size = 16384;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

}  // namespace

TEST_CASE("write timeout: a slow but steady reader gets a 12 MiB response whole, plain and over TLS",
          "[integration][net]") {
  // 12 MiB at 6 MiB/s takes 2 s, five times the write timeout: a deadline
  // on the whole write would cut it after 0.4 s plus the socket buffers.
  auto cfg = test::test_config();
  cfg.write_timeout = 400ms;
  constexpr std::size_t rate = 6u << 20;
  const std::string request = "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  SECTION("plain") {
    test::running_server srv(cfg, big_chain());
    test::raw_client c(srv.port(), 20000ms);
    shrink_receive_buffer(c.fd());
    REQUIRE(c.send(request));
    const read_result r = read_steadily(c.fd(), rate, 15000ms);
    CHECK(r.clean_end);
    CHECK(r.bytes > big_size);  // the body and its head
    CHECK(srv.server().live().timeouts == 0);
  }
  SECTION("TLS") {
    test::temp_dir dir;
    const std::string cert = dir.file("a.pem");
    const std::string key = dir.file("a.key");
    test::make_certificate({"localhost"}, cert, key);
    cfg.tls_certs = {cert};
    cfg.tls_keys = {key};
    test::running_server srv(cfg, big_chain(), std::make_shared<net::tls_terminator>(cfg));
    test::tls_client_options o;
    o.ca_file = cert;
    o.server_name = "localhost";
    test::tls_client c(srv.port(), o);
    REQUIRE(c.connected());
    shrink_receive_buffer(c.fd());
    REQUIRE(c.send(request));
    // The records as they come, not decrypted: their bytes are the body's
    // and each record's few bytes of framing and tag.
    const read_result r = read_steadily(c.fd(), rate, 15000ms);
    CHECK(r.clean_end);
    CHECK(r.bytes > big_size);
    CHECK(srv.server().live().timeouts == 0);
  }
}

TEST_CASE("write timeout: a reader that stops is cut after the timeout and counted in client_timeouts",
          "[integration][net]") {
  auto cfg = test::test_config();
  cfg.write_timeout = 400ms;
  test::running_server srv(cfg, big_chain());
  test::raw_client c(srv.port(), 20000ms);
  shrink_receive_buffer(c.fd());
  REQUIRE(c.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
  char buf[4096];
  REQUIRE(::recv(c.fd(), buf, sizeof buf, 0) > 0);  // the head has come; nothing more is read
  const auto stopped = std::chrono::steady_clock::now();
  REQUIRE(test::wait_until([&] { return srv.server().live().connections == 0; }, 5000ms));
  CHECK(std::chrono::steady_clock::now() - stopped >= 400ms);
  CHECK(srv.server().live().timeouts == 1);
}

TEST_CASE("write timeout: a close-delimited response cut short ends with a reset, not an end of stream",
          "[integration][net]") {
  // An HTTP/1.0 client of a backend whose response ends when it closes:
  // the client takes an end of stream for the end of the body (RFC 9112
  // section 9.8), so a cut one must end with a reset.
  test::proxy_fixture f;
  f.cfg.write_timeout = 400ms;
  f.backend.set_script([](const test::recorded_request&) {
    return test::reply{"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n", 64u << 20,
                       test::reply::then::close};
  });
  f.start();
  test::raw_client c(f.port(), 20000ms);
  shrink_receive_buffer(c.fd());
  REQUIRE(c.send("GET /api/eof HTTP/1.0\r\n\r\n"));
  std::string got;
  char buf[65536];
  while (got.size() < (1u << 20)) {  // the head and the first MiB, then no more reading
    const ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got.append(buf, static_cast<std::size_t>(n));
  }
  REQUIRE(got.rfind("HTTP/1.0 200 OK\r\n", 0) == 0);
  REQUIRE(got.find("Content-Length") == std::string::npos);
  REQUIRE(test::wait_until([&] { return f.srv->server().live().connections == 0; }, 5000ms));
  // What is still in the socket, then the reset (bounded: the socket holds
  // what the gateway sent before it stopped, a few MiB at most).
  ssize_t n = 0;
  int error = 0;
  for (int i = 0; i < 100000; ++i) {
    n = ::recv(c.fd(), buf, sizeof buf, 0);
    if (n <= 0) {
      error = n < 0 ? errno : 0;
      break;
    }
  }
  CHECK(n < 0);
  CHECK(error == ECONNRESET);
  CHECK(f.srv->server().live().timeouts == 1);
}
