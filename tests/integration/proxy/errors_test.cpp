// Backend failures as the client sees them: 502, 504, a cut connection; and
// the gateway going on serving others.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/proxy/proxy_fixture.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

long long ms_since(clock_type::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
}

// One tick of CLOCK_MONOTONIC_COARSE, rounded up to whole milliseconds. The
// worker's sweep arms and checks upstream deadlines on that clock, which
// lags the precise one by up to a tick, so a deadline can pass up to one
// tick before the precise clock has counted the whole timeout.
long long coarse_tick_ms() {
  timespec r{};
  clock_getres(CLOCK_MONOTONIC_COARSE, &r);
  return (static_cast<long long>(r.tv_sec) * 1'000'000'000 + r.tv_nsec + 999'999) / 1'000'000;
}

// Starts the gateway in front of two members, f.backend and `other`, with
// a 600 ms --upstream-timeout, and sends a GET while each member waits 400
// ms and then closes without a byte. One such attempt fits in the timeout,
// but the stale retry and the failover together (up to four such waits)
// would not if each attempt had the whole timeout again. With `pooled`,
// each member first answers one request, so that each has a pooled
// connection when the GET comes. Checks that the GET gets 504 at the
// timeout, not later than the sweep allows, counted as one timeout; the
// caller checks which attempts were made.
void get_504_at_timeout_across_attempts(test::proxy_fixture& f, test::recording_backend& other, bool pooled) {
  f.cfg.upstream_timeout = 600ms;
  const auto silent = [](const test::recorded_request&) { return test::reply{"", 0, test::reply::then::close, 400ms}; };
  if (!pooled) {
    f.backend.set_script(silent);
    other.set_script(silent);
  }
  f.start(f.backend.url() + "," + other.url());
  test::raw_client c(f.port());
  if (pooled) {
    for (int i = 0; i < 2; ++i) {
      REQUIRE(c.send("GET /api/warm HTTP/1.1\r\nHost: h\r\n\r\n"));
      auto r = c.read_response();
      REQUIRE(r);
      REQUIRE(r->status == 200);
    }
    REQUIRE(f.backend.connections_accepted() == 1);
    REQUIRE(other.connections_accepted() == 1);
    f.backend.set_script(silent);
    other.set_script(silent);
  }
  const auto t0 = clock_type::now();
  REQUIRE(c.send("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto r = c.read_response();
  const auto elapsed = ms_since(t0);
  REQUIRE(r);
  CHECK(r->status == 504);
  CHECK(elapsed >= 600 - coarse_tick_ms());
  // The sweep enforces the deadline at most a quarter of the timeout late.
  CHECK(elapsed < 1000);
  CHECK(f.stats->gateway_timeout.load() == 1);
}

}  // namespace

TEST_CASE("a backend that is down gets 502 within 100 ms", "[integration][proxy]") {
  test::proxy_fixture f;
  f.start("http://127.0.0.1:" + std::to_string(test::closed_port()));
  test::raw_client c(f.port());
  for (int i = 0; i < 3; ++i) {
    auto t0 = clock_type::now();
    REQUIRE(c.send("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n"));
    auto r = c.read_response();
    auto elapsed = ms_since(t0);
    REQUIRE(r);
    CHECK(r->status == 502);
    CHECK(r->body == "Bad Gateway\n");
    CHECK(elapsed < 100);
  }
  CHECK(f.stats->connect_failures.load() == 3);
  CHECK(f.stats->live.load() == 0);
}

TEST_CASE("a silent backend gets 504 at the upstream timeout", "[integration][proxy]") {
  test::proxy_fixture f;
  f.cfg.upstream_timeout = 300ms;
  f.backend.set_script([](const test::recorded_request&) { return test::reply{"", 0, test::reply::then::hang}; });
  f.start();
  test::raw_client c(f.port());
  auto t0 = clock_type::now();
  REQUIRE(c.send("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto r = c.read_response();
  auto elapsed = ms_since(t0);
  REQUIRE(r);
  CHECK(r->status == 504);
  CHECK(r->body == "Gateway Timeout\n");
  CHECK(elapsed >= 300 - coarse_tick_ms());
  CHECK(elapsed < 1500);
  // The timed-out upstream connection is closed, not pooled.
  CHECK(test::wait_until([&] { return f.backend.open_connections() == 0; }, 5000ms));
  CHECK(f.stats->live.load() == 0);
  CHECK(f.stats->gateway_timeout.load() == 1);
  // The client connection is still usable.
  f.backend.set_script([](const test::recorded_request&) { return test::reply{test::ok_response("back")}; });
  REQUIRE(c.send("GET /api/y HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto again = c.read_response();
  REQUIRE(again);
  CHECK(again->body == "back");
}

TEST_CASE("the upstream timeout bounds the whole wait for a GET's response head, across the stale retry",
          "[integration][proxy]") {
  // With a pooled connection on each member, the first attempt goes out on
  // one and is retried once on a fresh connection when it closes.
  test::recording_backend other;
  test::proxy_fixture f;
  get_504_at_timeout_across_attempts(f, other, true);
  CHECK(f.stats->retries.load() == 1);  // the stale retry was made, within the same deadline
  CHECK(f.stats->failovers.load() == 0);
}

TEST_CASE("the upstream timeout bounds the whole wait for a GET's response head, across the failover",
          "[integration][proxy]") {
  // No pooled connection: the first member's close sends the request to
  // the other member, which waits within what is left of the timeout.
  test::recording_backend other;
  test::proxy_fixture f;
  get_504_at_timeout_across_attempts(f, other, false);
  CHECK(f.stats->failovers.load() == 1);
  CHECK(f.backend.request_count() + other.request_count() == 2);
}

TEST_CASE("a backend that accepts no connection gets 504 at the connect timeout", "[integration][proxy]") {
  // A listener with a full accept queue: further SYNs are dropped, so the
  // gateway's connect hangs as it would towards an unreachable host.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(lfd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(lfd, 0) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  test::proxy_fixture f;
  f.cfg.upstream_connect_timeout = 200ms;
  f.start("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)));
  auto t0 = clock_type::now();
  auto r = test::http_request(f.port(), "GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n");
  auto elapsed = ms_since(t0);
  REQUIRE(r);
  CHECK(r->status == 504);
  CHECK(elapsed >= 200);
  CHECK(elapsed < 1500);
  CHECK(f.stats->live.load() == 0);
  f.srv.reset();
  for (int fd : fillers) ::close(fd);
  ::close(lfd);
}

TEST_CASE("a backend dying mid-body cuts the client connection and the gateway keeps serving",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.backend.set_script([](const test::recorded_request& rq) {
    if (rq.target == "/die")
      return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + std::string(5000, 'x'), 0,
                         test::reply::then::reset};
    if (rq.target == "/die-chunked")
      return test::reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n", 0,
                         test::reply::then::close};
    return test::reply{test::ok_response("alive")};
  });
  f.start();
  for (const char* path : {"/api/die", "/api/die-chunked"}) {
    INFO(path);
    test::raw_client c(f.port());
    REQUIRE(c.send(std::string("GET ") + path + " HTTP/1.1\r\nHost: h\r\n\r\n"));
    std::string all = c.read_all();  // returns at EOF: the gateway closed the connection
    // Whatever arrived, the response is incomplete: never a clean end.
    if (std::string_view(path) == "/api/die") {
      CHECK(all.size() < 1000000);
    } else {
      CHECK(all.find("\r\n0\r\n\r\n") == std::string::npos);
    }
  }
  auto r = test::http_request(f.port(), "GET /api/ok HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(r);
  CHECK(r->body == "alive");
  CHECK(test::wait_until([&] { return f.stats->live.load() <= 1; }, 5000ms));
}

TEST_CASE("a client that leaves mid-response gets its upstream connection closed, not pooled",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.backend.set_script([](const test::recorded_request&) {
    return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n", 100ull * 1024 * 1024};
  });
  f.start();
  {
    test::raw_client c(f.port());
    REQUIRE(c.send("GET /api/big HTTP/1.1\r\nHost: h\r\n\r\n"));
    char buf[65536];
    std::size_t got = 0;
    while (got < 1024 * 1024) {
      ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
      REQUIRE(n > 0);
      got += static_cast<std::size_t>(n);
    }
  }  // the client closes here
  CHECK(test::wait_until([&] { return f.backend.open_connections() == 0; }, 10000ms));
  CHECK(test::wait_until([&] { return f.stats->live.load() == 0; }, 10000ms));
  CHECK(f.stats->idle.load() == 0);
  CHECK(f.stats->discarded.load() == 1);
}

TEST_CASE("a hard shutdown closes an upstream connection still waiting for its head", "[integration][proxy]") {
  test::proxy_fixture f;
  f.cfg.upstream_timeout = 20s;
  f.cfg.drain_timeout = 200ms;
  f.backend.set_script([](const test::recorded_request&) { return test::reply{"", 0, test::reply::then::hang}; });
  f.start();
  test::raw_client c(f.port());
  REQUIRE(c.send("GET /api/slow HTTP/1.1\r\nHost: h\r\n\r\n"));
  REQUIRE(test::wait_until([&] { return f.backend.request_count() == 1; }, 5000ms));
  auto t0 = clock_type::now();
  f.srv->stop_and_wait();
  CHECK(ms_since(t0) < 2000);
  CHECK(f.stats->live.load() == 0);
  CHECK(test::wait_until([&] { return f.backend.open_connections() == 0; }, 5000ms));
  CHECK(f.srv->server().live().connections == 0);
}

TEST_CASE("a hard shutdown closes an upstream connection stalled mid-body", "[integration][proxy]") {
  test::proxy_fixture f;
  f.cfg.upstream_timeout = 20s;
  f.cfg.drain_timeout = 200ms;
  f.backend.set_script([](const test::recorded_request&) {
    return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(1000, 'x'), 0,
                       test::reply::then::hang};
  });
  f.start();
  test::raw_client c(f.port());
  REQUIRE(c.send("GET /api/stall HTTP/1.1\r\nHost: h\r\n\r\n"));
  char buf[4096];
  std::size_t got = 0;
  while (got < 1000) {
    ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got += static_cast<std::size_t>(n);
  }
  auto t0 = clock_type::now();
  f.srv->stop_and_wait();
  CHECK(ms_since(t0) < 2000);
  CHECK(f.stats->live.load() == 0);
  CHECK(c.wait_closed());
}

// Found by fuzzing: llhttp 8.1 lets these through; the reader must not.
TEST_CASE("backend heads llhttp tolerates but a client could not parse get 502", "[integration][proxy]") {
  const std::vector<std::pair<const char*, std::string>> bad = {
      {"one-digit status", "HTTP/1.1 2 OK\r\nContent-Length: 0\r\n\r\n"},
      {"status 099", "HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n"},
      {"status 700", "HTTP/1.1 700 X\r\nContent-Length: 0\r\n\r\n"},
      {"NUL in the reason", std::string("HTTP/1.1 200 O") + '\0' + "K\r\nContent-Length: 0\r\n\r\n"},
      {"space before a colon", "HTTP/1.1 200 OK\r\nX : a\r\nContent-Length: 0\r\n\r\n"},
      {"bare LF after the status line", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"},
  };
  for (const auto& [name, bytes] : bad) {
    INFO(name);
    test::recording_backend backend;
    std::string reply_bytes = bytes;
    backend.set_script([reply_bytes](const test::recorded_request&) {
      test::reply r;
      r.bytes = reply_bytes;
      r.after = test::reply::then::close;
      return r;
    });
    auto cfg = test::test_config();
    cfg.backend = backend.url();
    cfg.api_keys = {"k"};
    test::running_server srv(cfg);
    auto r = test::http_request(srv.port(), test::make_request("GET", "/api/x", {}, "X-API-Key: k\r\n"));
    REQUIRE(r);
    CHECK(r->status == 502);
  }
}
