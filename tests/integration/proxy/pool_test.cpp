// The upstream pool: reuse, stale connections and retries, caps, shutdown.
#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <functional>

#include <sys/resource.h>
#include <sys/socket.h>

#include <thread>

#include "gateway/proxy/concurrency_limit.hpp"
#include "tests/support/child_process.hpp"
#include "tests/integration/proxy/proxy_fixture.hpp"
#include "tests/support/report.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// Sends `count` GETs on one keep-alive connection, one after the other.
asio::awaitable<void> keep_alive_client(asio::ip::tcp::socket& s, std::string& buf, int id, int i,
                                        std::atomic<int>& ok) {
  std::string target = "/api/c" + std::to_string(id) + "/" + std::to_string(i);
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: t\r\n\r\n";
  co_await asio::async_write(s, asio::buffer(req), asio::use_awaitable);
  std::size_t n = co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", asio::use_awaitable);
  std::string head = buf.substr(0, n);
  buf.erase(0, n);
  auto cl = head.find("Content-Length: ");
  if (cl == std::string::npos) co_return;
  std::size_t len = std::stoul(head.substr(cl + 16));
  if (buf.size() < len)
    co_await asio::async_read(s, asio::dynamic_buffer(buf), asio::transfer_exactly(len - buf.size()),
                              asio::use_awaitable);
  std::string body = buf.substr(0, len);
  buf.erase(0, len);
  if (head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0 && body == target.substr(4)) ok.fetch_add(1);
}

// `drivers` coroutines share `conns` client connections round-robin, so at
// most `drivers` requests are in flight at any time.
void run_load(std::uint16_t port, int conns, int drivers, int per_conn, std::atomic<int>& ok) {
  test::run_with_deadline(
      [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto sockets = std::make_shared<std::vector<asio::ip::tcp::socket>>();
        auto bufs = std::make_shared<std::vector<std::string>>(static_cast<std::size_t>(conns));
        for (int c = 0; c < conns; ++c) {
          sockets->emplace_back(ex);
          co_await sockets->back().async_connect({asio::ip::address_v4::loopback(), port}, asio::use_awaitable);
        }
        for (int d = 0; d < drivers; ++d) {
          asio::co_spawn(
              ex,
              [sockets, bufs, d, drivers, conns, per_conn, &ok]() -> asio::awaitable<void> {
                for (int i = 0; i < per_conn; ++i)
                  for (int c = d; c < conns; c += drivers)
                    co_await keep_alive_client((*sockets)[static_cast<std::size_t>(c)],
                                               (*bufs)[static_cast<std::size_t>(c)], c, i, ok);
              },
              asio::detached);
        }
      },
      120s);
}

}  // namespace

TEST_CASE("a backend closing pooled connections between requests causes no client error for GETs",
          "[integration][proxy]") {
  test::proxy_fixture f;
  SECTION("closed while idle: noticed when the FIN comes, and a POST after it goes out on a fresh connection") {
    f.backend.set_script([](const test::recorded_request& rq) {
      // Keep-alive by default, then the backend closes anyway (its idle timeout, say).
      return test::reply{test::ok_response(rq.target), 0, test::reply::then::close};
    });
    f.start();
    test::raw_client c(f.port());
    for (int i = 0; i < 20; ++i) {
      REQUIRE(c.send("GET /api/n" + std::to_string(i) + " HTTP/1.1\r\nHost: h\r\n\r\n"));
      auto r = c.read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->body == "/n" + std::to_string(i));
      // The idle connection's pending read sees the FIN: the pool closes
      // the connection then, with no request taking it (stale counts only
      // that). The next request waits for it: the backend's FIN follows its
      // response by one turn of its thread, and a request that came first
      // would take the connection and be retried (the next section).
      INFO("request " << i);
      REQUIRE(test::wait_until([&] { return f.stats->stale.load() == i + 1; }, 5000ms));
    }
    CHECK(f.backend.connections_accepted() == 20);  // one per request: each was closed after use
    CHECK(f.stats->retries.load() == 0);
    REQUIRE(c.send(test::make_request("POST", "/api/after-close", "payload")));
    auto post = c.read_response();
    REQUIRE(post);
    CHECK(post->status == 200);
    CHECK(post->body == "/after-close");
    CHECK(f.stats->retries.load() == 0);
    CHECK(f.stats->bad_gateway.load() == 0);
  }
  SECTION("closed as the request arrives: idempotent requests are retried once, a POST is not") {
    // Every request that arrives second on a backend connection is dropped
    // unanswered, which is what a backend closing an idle connection at the
    // moment the proxy reuses it looks like.
    f.backend.set_script([](const test::recorded_request& rq) {
      if (rq.index_on_connection > 0) return test::reply{"", 0, test::reply::then::close};
      return test::reply{test::ok_response(rq.method + " " + rq.target)};
    });
    f.cfg.threads = 1;  // one pool, so the second request surely reuses the first connection
    f.start();
    test::raw_client c(f.port());
    REQUIRE(c.send("GET /api/first HTTP/1.1\r\nHost: h\r\n\r\n"));
    auto r1 = c.read_response();
    REQUIRE(r1);
    CHECK(r1->body == "GET /first");
    for (const char* m : {"GET", "PUT", "DELETE"}) {
      INFO(m);
      REQUIRE(c.send(test::make_request(m, std::string("/api/again-") + m, m == std::string("PUT") ? "x" : "")));
      auto r = c.read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->body == std::string(m) + " /again-" + m);
    }
    CHECK(f.stats->retries.load() == 3);
    REQUIRE(c.send(test::make_request("POST", "/api/once", "payload")));
    auto post = c.read_response();
    REQUIRE(post);
    CHECK(post->status == 502);
    std::size_t posts = 0;
    for (const auto& rq : f.backend.requests()) posts += rq.target == "/once";
    CHECK(posts == 1);  // it may have been acted upon: never sent twice
    CHECK(f.stats->retries.load() == 3);
  }
}

namespace {

// Waits, polling every 100 us, until `count()` reaches `n`: the tests below
// act within a few milliseconds of a backend's misbehaviour, so the pool
// must notice it while the connection is idle, not only after a delay.
bool wait_for_count(const std::function<std::size_t()>& count, std::size_t n, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (count() < n) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

}  // namespace

// A backend that misbehaves 1 ms after a response without saying it will
// close: what it sends or does then arrives while the connection sits idle
// in the pool. The next request, sent as soon as the backend has
// misbehaved, must not be hurt by it.
TEST_CASE("a second response a backend sends 1 ms after the first never reaches another client",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.cfg.threads = 1;  // one pool: the second request would take the first one's connection
  f.backend.set_script([](const test::recorded_request& rq) {
    test::reply r{test::ok_response(rq.target == "/first" ? "first" : rq.target)};
    if (rq.target == "/first") {
      r.late_delay = 1ms;
      r.late_bytes = test::ok_response("unsolicited");
    }
    return r;
  });
  f.start();
  auto first = test::http_request(f.port(), "GET /api/first HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(first);
  CHECK(first->body == "first");
  REQUIRE(wait_for_count([&] { return f.backend.late_actions(); }, 1, 5000ms));
  // Another client, on its own connection, gets its own response.
  test::raw_client c(f.port());
  for (int i = 0; i < 3; ++i) {
    const std::string target = "/second" + std::to_string(i);
    REQUIRE(c.send("GET /api" + target + " HTTP/1.1\r\nHost: h\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == target);
  }
  // The first connection was not reused: closed as stale while idle, or,
  // on a slow run where the late bytes came in the response's own read, as
  // a response followed by extra bytes.
  CHECK(f.backend.connections_accepted() == 2);
}

#if defined(GATEWAY_TEST_IO_URING)
// Whether every thread of process `pid` is stopped (state T in its stat).
static bool all_threads_stopped(pid_t pid) {
  std::error_code ec;
  bool any = false;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream f(t.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'T') return false;
    any = true;
  }
  return any;
}

// Bytes a backend sends to an idle pooled connection, reaped by the worker
// in the same pass as a request that takes that connection, ahead of the
// read's completion handler. The gateway binary, one worker, is stopped
// (SIGSTOP) while a keep-alive client's request and then the backend's stray
// response arrive, and continued: its next pass finds both, the client's
// first. On io_uring the stray bytes are already in the pooled read's buffer
// then, and the connection is refused at the take.
TEST_CASE(
    "io_uring: a stray response a backend sends to an idle pooled connection is not the answer to a request "
    "that takes it in the same pass of the worker's loop",
    "[integration][proxy]") {
  test::recording_backend backend;
  backend.set_script([](const test::recorded_request& rq) {
    test::reply r{test::ok_response(rq.target)};
    if (rq.target == "/first") {
      r.late_delay = 300ms;
      r.late_bytes = test::ok_response("unsolicited");
    }
    return r;
  });
  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--io-backend", "io_uring", "--listen",
                          "127.0.0.1:0", "--threads", "1", "--backend", backend.url(), "--api-key", "k"});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  INFO("stderr: " << gw.err());
  REQUIRE(listening);
  const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  // A keep-alive client whose next read is pending in the worker.
  test::raw_client c(port);
  REQUIRE(c.send("GET /health HTTP/1.1\r\nHost: h\r\n\r\n"));
  const auto health = c.read_response();
  REQUIRE(health);
  REQUIRE(health->status == 200);
  // Another client's request leaves its backend connection idle in the pool.
  const auto first = test::http_request(port, "GET /api/first HTTP/1.1\r\nHost: h\r\nX-API-Key: k\r\n\r\n");
  REQUIRE(first);
  CHECK(first->body == "/first");
  REQUIRE(test::wait_until([&] { return test::gauge(port, "upstream_idle_connections") == 1; }, 5000ms));
  gw.signal(SIGSTOP);
  REQUIRE(test::wait_until([&] { return all_threads_stopped(gw.pid()); }, 5000ms));
  REQUIRE(c.send("GET /api/second HTTP/1.1\r\nHost: h\r\nX-API-Key: k\r\n\r\n"));
  const bool stray_sent = wait_for_count([&] { return backend.late_actions(); }, 1, 5000ms);
  std::this_thread::sleep_for(50ms);  // the stray segment is in the gateway's socket
  gw.signal(SIGCONT);
  REQUIRE(stray_sent);
  const auto second = c.read_response();
  REQUIRE(second);
  CHECK(second->status == 200);
  CHECK(second->body == "/second");
  CHECK(backend.connections_accepted() == 2);  // the stray one's connection was not reused
  CHECK(test::counter(port, "upstream_stale") == 1);
}
#endif

TEST_CASE("a body a backend sends 1 ms after its HEAD response does not break the next request",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.cfg.threads = 1;
  f.backend.set_script([](const test::recorded_request& rq) {
    if (rq.method == "HEAD") {
      // The head says 5 bytes; a HEAD response has none (RFC 9110 section
      // 9.3.2), but this backend sends them anyway, late.
      test::reply r{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"};
      r.late_delay = 1ms;
      r.late_bytes = "hello";
      return r;
    }
    return test::reply{test::ok_response(rq.method + " " + rq.target)};
  });
  f.start();
  test::raw_client c(f.port());
  REQUIRE(c.send("HEAD /api/h HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto head = c.read_response(true);
  REQUIRE(head);
  CHECK(head->status == 200);
  REQUIRE(wait_for_count([&] { return f.backend.late_actions(); }, 1, 5000ms));
  REQUIRE(c.send("GET /api/after-head HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto get = c.read_response();
  REQUIRE(get);
  CHECK(get->status == 200);
  CHECK(get->body == "GET /after-head");
  CHECK(f.stats->bad_gateway.load() == 0);
  CHECK(f.backend.connections_accepted() == 2);  // the HEAD's connection was not reused (see above)
}

TEST_CASE("a backend closing a connection 1 ms after a keep-alive response costs no request, a POST included",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.cfg.threads = 1;
  f.backend.set_script([](const test::recorded_request& rq) {
    test::reply r{test::ok_response(rq.method + " " + rq.target)};
    if (rq.target == "/first") {
      r.late_delay = 1ms;  // no Connection: close, then a FIN 1 ms later
      r.after = test::reply::then::close;
    }
    return r;
  });
  f.start();
  test::raw_client c(f.port());
  REQUIRE(c.send("GET /api/first HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto first = c.read_response();
  REQUIRE(first);
  CHECK(first->body == "GET /first");
  REQUIRE(wait_for_count([&] { return f.backend.late_actions(); }, 1, 5000ms));
  // Not idempotent, so never sent twice: it must go out on a fresh
  // connection the first time.
  REQUIRE(c.send(test::make_request("POST", "/api/upload", "payload")));
  auto post = c.read_response();
  REQUIRE(post);
  CHECK(post->status == 200);
  CHECK(post->body == "POST /upload");
  CHECK(f.stats->stale.load() == 1);
  CHECK(f.stats->retries.load() == 0);
  CHECK(f.stats->bad_gateway.load() == 0);
  std::size_t posts = 0;
  for (const auto& rq : f.backend.requests()) posts += rq.target == "/upload";
  CHECK(posts == 1);
}

TEST_CASE("a pooled connection the backend closes while idle is closed by the gateway at once, not when taken",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.cfg.threads = 1;
  f.cfg.upstream_idle_timeout = 60s;  // not the idle timeout: the FIN itself
  f.backend.set_script([](const test::recorded_request& rq) {
    test::reply r{test::ok_response(rq.target)};
    r.late_delay = 2ms;
    r.after = test::reply::then::close;  // the backend then waits for the gateway's close
    return r;
  });
  f.start();
  auto r = test::http_request(f.port(), "GET /api/once HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(r);
  CHECK(r->body == "/once");
  CHECK(test::wait_until([&] { return f.backend.late_actions() == 1 && f.backend.open_connections() == 0; }, 5000ms));
  CHECK(f.stats->stale.load() == 1);
  CHECK(f.stats->idle.load() == 0);
  CHECK(f.stats->live.load() == 0);
}

TEST_CASE("idle pooled connections are watched, and a pool destroyed with their reads pending closes every socket",
          "[integration][proxy]") {
  asio::io_context io;
  asio::ip::tcp::acceptor backend(io, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  auto stats = std::make_shared<proxy::upstream_stats>();
  auto pool = std::make_unique<proxy::upstream_pool>(io, backend.local_endpoint(), proxy::pool_limits{}, stats);
  std::vector<asio::ip::tcp::socket> accepted;
  int pooled = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 3; ++i) {
          proxy::upstream_connection c(io, *stats);
          const std::error_code ec = co_await pool->connect(c);
          if (ec) co_return;
          accepted.push_back(co_await backend.async_accept(asio::use_awaitable));
          pool->give_back(std::move(c));
          ++pooled;
        }
      },
      asio::detached);
  const auto run_until = [&](const std::function<bool()>& done) {
    for (int i = 0; i < 500 && !done(); ++i) io.run_for(10ms);
    return done();
  };
  REQUIRE(run_until([&] { return pooled == 3; }));
  CHECK(pool->idle_count() == 3);
  CHECK(stats->live.load() == 3);
  // One backend connection closes, another sends bytes nobody asked for:
  // both are noticed while idle and closed.
  accepted[0].shutdown(asio::ip::tcp::socket::shutdown_send);
  REQUIRE(run_until([&] { return stats->stale.load() == 1; }));
  asio::write(accepted[1], asio::buffer(std::string_view("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")));
  REQUIRE(run_until([&] { return stats->stale.load() == 2; }));
  CHECK(pool->idle_count() == 1);
  CHECK(stats->idle.load() == 1);
  CHECK(stats->live.load() == 1);
  // Destroyed with the last one's read pending: the read is interrupted,
  // and the socket closed once it has returned; nothing is left for the
  // io_context to run (AddressSanitizer checks nothing touches the pool).
  pool.reset();
  CHECK(stats->live.load() == 0);
  CHECK(stats->idle.load() == 0);
  backend.close();
  io.restart();
  io.run_for(5s);
  CHECK(io.stopped());
  for (auto& s : accepted) {
    const timeval limit{5, 0};  // a socket left open fails the check instead of hanging
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    char byte;
    std::error_code ec;
    s.read_some(asio::buffer(&byte, 1), ec);
    CHECK(ec == asio::error::eof);
  }
}

TEST_CASE("10,000 proxied requests over 100 client connections open only a few upstream connections",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.backend.set_script([](const test::recorded_request& rq) { return test::reply{test::ok_response(rq.target)}; });
  f.start();
  SECTION("at most 4 requests in flight: a handful of connections per worker") {
    std::atomic<int> ok{0};
    run_load(f.port(), 100, 4, 100, ok);
    CHECK(ok.load() == 10000);
    CHECK(f.backend.request_count() == 10000);
    CHECK(f.stats->opened.load() <= 8);  // 2 workers x 4 in flight, at worst
    CHECK(static_cast<std::int64_t>(f.backend.connections_accepted()) == f.stats->opened.load());
    CHECK(f.stats->reused.load() >= 10000 - 8);
    GATEWAY_REPORT("4 in flight: " << f.stats->opened.load() << " upstream connections for 10,000 requests");
  }
  SECTION("all 100 connections busy at once: bounded by the concurrency, not the request count") {
    std::atomic<int> ok{0};
    run_load(f.port(), 100, 100, 100, ok);
    CHECK(ok.load() == 10000);
    CHECK(f.stats->opened.load() <= 100);
    CHECK(f.stats->reused.load() >= 9900);
    GATEWAY_REPORT("100 in flight: " << f.stats->opened.load() << " upstream connections for 10,000 requests");
  }
  CHECK(f.stats->retries.load() == 0);
  CHECK(f.stats->bad_gateway.load() == 0);
}

TEST_CASE("under a steady load of 600 concurrent requests the pool neither connects nor closes, and trims "
          "afterwards", "[integration][proxy]") {
  // Four sockets per request in flight live in this process (client, its
  // gateway side, upstream, backend side).
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
  REQUIRE(lim.rlim_cur >= 4 * 600 + 200);
  test::proxy_fixture f;
  f.cfg.threads = 1;  // one pool sees all 600 at once
  f.cfg.upstream_idle_timeout = 2s;
  f.backend.set_script([](const test::recorded_request& rq) { return test::reply{test::ok_response(rq.target)}; });
  f.start();
  std::atomic<int> ok{0};
  run_load(f.port(), 600, 600, 10, ok);
  CHECK(ok.load() == 6000);
  // Never more connections than requests in flight, and none closed while
  // the load lasted (a pool capped below the concurrency closes what comes
  // back beyond its cap after a burst, then connects again for the next).
  const auto opened = f.stats->opened.load();
  const auto pooled = f.stats->idle.load();
  CHECK(opened <= 600);
  CHECK(f.stats->live.load() == pooled);
  CHECK(static_cast<std::int64_t>(opened) ==
        static_cast<std::int64_t>(pooled) + static_cast<std::int64_t>(f.stats->expired.load()));
  CHECK(pooled >= 10);
  // Idle for the idle timeout: closed without a request to notice.
  CHECK(test::wait_until([&] { return f.stats->idle.load() == 0; }, 10000ms));
  CHECK(f.stats->expired.load() == opened);
  CHECK(test::wait_until([&] { return f.backend.open_connections() == 0; }, 5000ms));
  GATEWAY_REPORT("600 in flight: " << opened << " upstream connections for 6,000 requests, " << pooled
                                   << " pooled afterwards");
}

TEST_CASE("idle pooled connections are capped per worker and closed after the idle timeout",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.cfg.threads = 1;
  f.cfg.upstream_max_idle = 2;
  f.cfg.upstream_idle_timeout = 300ms;
  f.backend.set_script([](const test::recorded_request& rq) { return test::reply{test::ok_response(rq.target)}; });
  f.start();
  std::atomic<int> ok{0};
  run_load(f.port(), 10, 10, 5, ok);  // up to 10 upstream connections at once
  CHECK(ok.load() == 50);
  CHECK(f.stats->opened.load() >= 3);  // (else the cap below proves nothing)
  CHECK(f.stats->idle.load() <= 2);
  CHECK(test::wait_until([&] { return f.backend.open_connections() <= 2; }, 5000ms));
  // Then the idle timeout closes the rest without any request to notice.
  CHECK(test::wait_until([&] { return f.backend.open_connections() == 0; }, 5000ms));
  CHECK(f.stats->idle.load() == 0);
  CHECK(f.stats->live.load() == 0);
  CHECK(f.stats->expired.load() >= 1);
}

TEST_CASE("after shutdown no upstream socket is open", "[integration][proxy]") {
  test::proxy_fixture f;
  f.start();
  std::atomic<int> ok{0};
  f.backend.set_script([](const test::recorded_request& rq) { return test::reply{test::ok_response(rq.target)}; });
  run_load(f.port(), 20, 20, 5, ok);
  CHECK(ok.load() == 100);
  CHECK(f.stats->live.load() > 0);  // pooled, idle
  CHECK(f.stats->idle.load() == f.stats->live.load());
  f.srv->stop_and_wait();
  CHECK(f.stats->live.load() == 0);
  CHECK(f.stats->idle.load() == 0);
  CHECK(test::wait_until([&] { return f.backend.open_connections() == 0; }, 5000ms));
  auto live = f.srv->server().live();
  CHECK(live.connections == 0);
  CHECK(live.coroutines == 0);
  CHECK(live.threads == 0);
}

TEST_CASE("the upstream concurrency cap counts a request until its streamed response is over", "[integration][proxy]") {
  test::recording_backend backend;
  constexpr std::uint64_t big = 64u * 1024 * 1024;
  backend.set_script([&](const test::recorded_request& rq) {
    if (rq.target == "/big")
      return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(big) + "\r\n\r\n", big};
    return test::reply{test::ok_response("small")};
  });
  auto stats = std::make_shared<proxy::upstream_stats>();
  core::stat rejected{0};
  auto cfg = test::test_config();
  cfg.threads = 1;
  auto chain = [&](net::worker_env& env) {
    proxy::proxy_options po = proxy::options_from_config(*env.cfg);
    po.backend_url = backend.url();
    po.stats = stats;
    proxy::concurrency_limit_options lo;
    lo.max_in_flight = 2;
    lo.queue_timeout = 200ms;
    http::layer_list route;
    route.push_back(proxy::make_concurrency_limit(lo, &rejected));
    route.push_back(proxy::make_proxy(env, std::move(po)));
    auto r = std::make_unique<app::router>();
    r->add_prefix("/api/", std::move(route));
    return test::pipeline_of(std::move(r));
  };
  test::running_server srv(cfg, chain);
  {
    // Two clients take the two slots and read only the head of their
    // 64 MiB responses: the responses stream (slowly), holding their
    // backend connections, so a third request waits and gets 503.
    std::vector<std::unique_ptr<test::raw_client>> readers;
    for (int i = 0; i < 2; ++i) {
      readers.push_back(std::make_unique<test::raw_client>(srv.port(), 5000ms));
      REQUIRE(readers.back()->send("GET /api/big HTTP/1.1\r\nHost: h\r\n\r\n"));
      char head[256];
      REQUIRE(::recv(readers.back()->fd(), head, sizeof head, 0) > 0);
    }
    auto third = test::http_request(srv.port(), "GET /api/small HTTP/1.1\r\nHost: h\r\n\r\n");
    REQUIRE(third);
    CHECK(third->status == 503);
    CHECK(rejected.load() == 1);
  }
  // The two readers are gone: their slots come back.
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    auto r = test::http_request(srv.port(), "GET /api/small HTTP/1.1\r\nHost: h\r\n\r\n");
    served = r && r->status == 200 && r->body == "small";
    if (!served) std::this_thread::sleep_for(50ms);
  }
  CHECK(served);
  // Both slots: two more at once are served.
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 2; ++i)
    ts.emplace_back([&] {
      auto r = test::http_request(srv.port(), "GET /api/small HTTP/1.1\r\nHost: h\r\n\r\n");
      if (r && r->status == 200) ++ok;
    });
  for (auto& t : ts) t.join();
  CHECK(ok == 2);
}
