#include <catch2/catch.hpp>

#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <thread>

#include "tests/integration/core/test_handlers.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// One keep-alive client connection driven by a coroutine: sends `count`
// requests one after the other and checks every response.
asio::awaitable<void> keep_alive_client(std::uint16_t port, int id, int count, std::atomic<int>& ok) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::socket s(ex);
  co_await s.async_connect({asio::ip::address_v4::loopback(), port}, asio::use_awaitable);
  std::string buf;
  for (int i = 0; i < count; ++i) {
    std::string target = "/echo/" + std::to_string(id) + "/" + std::to_string(i);
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: t\r\n\r\n";
    co_await asio::async_write(s, asio::buffer(req), asio::use_awaitable);
    std::size_t n = co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", asio::use_awaitable);
    std::string head = buf.substr(0, n);
    buf.erase(0, n);
    auto cl_pos = head.find("Content-Length: ");
    if (cl_pos == std::string::npos) co_return;  // counted as missing by the caller
    std::size_t len = std::stoul(head.substr(cl_pos + 16));
    if (buf.size() < len) {
      co_await asio::async_read(s, asio::dynamic_buffer(buf), asio::transfer_exactly(len - buf.size()),
                                asio::use_awaitable);
    }
    std::string body = buf.substr(0, len);
    buf.erase(0, len);
    if (head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0 && body == "GET " + target + " 0 0\n") ok.fetch_add(1);
  }
}

}  // namespace

TEST_CASE("200 concurrent keep-alive connections each sending 100 requests all get correct responses",
          "[integration][core]") {
  test::running_server srv(test::test_config(), test::test_chain());
  std::atomic<int> ok{0};
  test::run_with_deadline(
      [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (int c = 0; c < 200; ++c)
          asio::co_spawn(ex, keep_alive_client(srv.port(), c, 100, ok), asio::detached);
        co_return;
      },
      60s);
  CHECK(ok.load() == 200 * 100);
  CHECK(srv.server().live().connections_total == 200);
}

TEST_CASE("pipelined requests come back in order", "[integration][core]") {
  test::running_server srv(test::test_config(), test::test_chain(50ms));
  test::raw_client c(srv.port());
  std::string batch;
  batch += "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";  // the slow one first: order must still hold
  for (int i = 0; i < 5; ++i) batch += "GET /echo/" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
  batch += test::make_request("POST", "/echo/body", "hello");
  batch += "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
  REQUIRE(c.send(batch));
  auto first = c.read_response();
  REQUIRE(first);
  CHECK(first->body == "slow done\n");
  for (int i = 0; i < 5; ++i) {
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->body == "GET /echo/" + std::to_string(i) + " 0 0\n");
  }
  auto post = c.read_response();
  REQUIRE(post);
  CHECK(post->body == "POST /echo/body 5 " + std::to_string(test::checksum("hello")) + "\n");
  auto health = c.read_response();
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->body.find("\"status\":\"healthy\"") != std::string::npos);
}

TEST_CASE("health returns the contract's JSON through the gateway's own chain", "[integration][core]") {
  auto cfg = test::test_config();
  cfg.api_keys = {"test-key"};
  test::running_server srv(cfg);
  auto r = test::http_request(srv.port(), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("Content-Type") == "application/json");
  // {"status":"healthy","timestamp":"YYYY-MM-DDTHH:MM:SSZ"}
  REQUIRE(r->body.size() == 55);
  CHECK(r->body.rfind("{\"status\":\"healthy\",\"timestamp\":\"", 0) == 0);
  CHECK(r->body[33 + 4] == '-');
  CHECK(r->body[33 + 10] == 'T');
  CHECK(r->body.substr(r->body.size() - 3) == "Z\"}");
  // Unknown paths get 404 from the router before any middleware, as the
  // seed's mux answered them: no 401, no rate-limit headers, key or not.
  auto anonymous = test::http_request(srv.port(), "GET /nothing-here HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(anonymous);
  CHECK(anonymous->status == 404);
  CHECK(anonymous->body == "404 page not found\n");
  CHECK(anonymous->header("WWW-Authenticate").empty());
  CHECK(anonymous->header("RateLimit-Limit").empty());
  auto missing =
      test::http_request(srv.port(), "GET /nothing-here HTTP/1.1\r\nHost: t\r\nX-API-Key: test-key\r\n\r\n");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(missing->header("RateLimit-Limit").empty());
}

TEST_CASE("a small --max-body applies to a small body that arrived with its head", "[integration][core]") {
  auto cfg = test::test_config();
  cfg.max_body = 10;
  test::running_server srv(cfg, test::test_chain());
  // Head and body in one send, so the body is already buffered when the head is parsed.
  auto over = test::http_request(srv.port(), test::make_request("POST", "/echo/small", std::string(11, 'x')));
  REQUIRE(over);
  CHECK(over->status == 413);
  auto at = test::http_request(srv.port(), test::make_request("POST", "/echo/small", std::string(10, 'x')));
  REQUIRE(at);
  CHECK(at->status == 200);
}

TEST_CASE("a body over the limit gets 413 without being buffered, a 10 MiB body is accepted",
          "[integration][core]") {
  test::running_server srv(test::test_config(), test::test_chain());
  const std::size_t ten_mib = 10u * 1024 * 1024;

  SECTION("declared Content-Length of 11 MiB: 413 at once, RSS stays flat") {
    std::size_t before = test::rss_bytes();
    for (int i = 0; i < 5; ++i) {
      test::raw_client c(srv.port());
      std::string head = "POST /echo/big HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(11u * 1024 * 1024) +
                         "\r\n\r\n";
      REQUIRE(c.send(head));
      // Send part of the body; the gateway answers without waiting for the rest.
      c.send(std::string(256 * 1024, 'x'));
      auto r = c.read_response();
      REQUIRE(r);
      CHECK(r->status == 413);
      CHECK(r->header("Connection") == "close");
    }
    std::size_t after = test::rss_bytes();
    if (test::rss_checks_apply) CHECK(after < before + 4u * 1024 * 1024);
  }
  SECTION("a chunked body that grows past the limit gets 413 as soon as it does") {
    test::raw_client c(srv.port());
    REQUIRE(c.send("POST /echo/chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    std::string chunk = "100000\r\n" + std::string(0x100000, 'y') + "\r\n";  // 1 MiB chunks
    bool answered = false;
    for (int i = 0; i < 12 && !answered; ++i) {
      if (!c.send(chunk)) break;
    }
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 413);
  }
  SECTION("exactly 10 MiB is accepted, with Content-Length and chunked") {
    std::string body(ten_mib, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 + 3);
    auto expect = "POST /echo/ten " + std::to_string(ten_mib) + " " + std::to_string(test::checksum(body)) + "\n";
    auto r = test::http_request(srv.port(), test::make_request("POST", "/echo/ten", body));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == expect);

    test::raw_client c(srv.port());
    std::string req = "POST /echo/ten HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (std::size_t off = 0; off < body.size(); off += 1000000) {
      std::size_t n = std::min<std::size_t>(1000000, body.size() - off);
      char hex[16];
      std::snprintf(hex, sizeof hex, "%zx\r\n", n);
      req += hex;
      req.append(body, off, n);
      req += "\r\n";
    }
    req += "0\r\n\r\n";
    REQUIRE(c.send(req));
    auto rc = c.read_response();
    REQUIRE(rc);
    CHECK(rc->status == 200);
    CHECK(rc->body == expect);
  }
}

TEST_CASE("Expect: 100-continue gets an interim response before the body is sent", "[integration][core]") {
  test::running_server srv(test::test_config(), test::test_chain());
  test::raw_client c(srv.port());
  REQUIRE(c.send("POST /echo/x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  auto interim = c.read_response();
  REQUIRE(interim);
  CHECK(interim->status == 100);
  REQUIRE(c.send("hello"));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "POST /echo/x 5 " + std::to_string(test::checksum("hello")) + "\n");
}

TEST_CASE("HTTP/1.0 closes after the response unless keep-alive is asked for", "[integration][core]") {
  test::running_server srv(test::test_config(), test::test_chain());
  {
    test::raw_client c(srv.port());
    REQUIRE(c.send("GET /echo/a HTTP/1.0\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("Connection") == "close");
    CHECK(c.wait_closed());
  }
  {
    test::raw_client c(srv.port());
    REQUIRE(c.send("GET /echo/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->header("Connection") == "keep-alive");
    REQUIRE(c.send("GET /echo/b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r2 = c.read_response();
    REQUIRE(r2);
    CHECK(r2->body == "GET /echo/b 0 0\n");
  }
  {
    test::raw_client c(srv.port());
    REQUIRE(c.send("GET /echo/a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->header("Connection") == "close");
    CHECK(c.wait_closed());
  }
}

TEST_CASE("a slow client that never finishes its head gets 408 after the header timeout", "[integration][core]") {
  auto cfg = test::test_config();
  cfg.header_timeout = 300ms;
  test::running_server srv(cfg, test::test_chain());
  test::raw_client c(srv.port(), 5000ms);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(c.send("GET /health HTTP/1.1\r\nHost: t\r\n"));  // no final CRLF, ever
  auto r = c.read_response();
  auto waited = std::chrono::steady_clock::now() - t0;
  REQUIRE(r);
  CHECK(r->status == 408);
  CHECK(waited >= 250ms);
  CHECK(waited < 2000ms);
  CHECK(c.wait_closed());
  CHECK(srv.server().live().timeouts >= 1);
}

TEST_CASE("an idle keep-alive connection is closed after the idle timeout", "[integration][core]") {
  auto cfg = test::test_config();
  cfg.idle_timeout = 200ms;
  test::running_server srv(cfg, test::test_chain());
  test::raw_client c(srv.port(), 5000ms);
  REQUIRE(c.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(c.read_response());
  auto t0 = std::chrono::steady_clock::now();
  CHECK(c.wait_closed());
  CHECK(std::chrono::steady_clock::now() - t0 < 2000ms);
}

TEST_CASE("a body that stops arriving gets 408 after the body timeout", "[integration][core]") {
  auto cfg = test::test_config();
  cfg.body_timeout = 300ms;
  test::running_server srv(cfg, test::test_chain());
  test::raw_client c(srv.port(), 5000ms);
  REQUIRE(c.send("POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly-part"));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 408);
}

TEST_CASE("shutdown with 200 requests in flight lets them finish and leaves nothing alive",
          "[integration][core]") {
  auto cfg = test::test_config();
  cfg.drain_timeout = 10s;
  // Long enough that all 200 are in the handler together even on a loaded machine.
  test::running_server srv(cfg, test::test_chain(3000ms));
  constexpr int n = 200;
  std::vector<std::unique_ptr<test::raw_client>> clients;
  for (int i = 0; i < n; ++i) {
    clients.push_back(std::make_unique<test::raw_client>(srv.port()));
    REQUIRE(clients.back()->send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  }
  // Plus idle keep-alive connections, which must be closed at once.
  std::vector<std::unique_ptr<test::raw_client>> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(std::make_unique<test::raw_client>(srv.port()));
    REQUIRE(idle.back()->send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
    REQUIRE(idle.back()->read_response());
  }
  // Wait until all 200 are inside the handler.
  REQUIRE(test::wait_until([&] { return srv.server().live().requests_in_flight == n; }, 3000ms));

  std::thread stopper([&] { srv.stop_and_wait(); });
  int ok = 0;
  for (auto& c : clients) {
    auto r = c->read_response();
    if (r && r->status == 200 && r->body == "slow done\n" && r->header("Connection") == "close") ++ok;
  }
  for (auto& c : idle) CHECK(c->wait_closed());
  stopper.join();
  CHECK(ok == n);
  auto live = srv.server().live();
  CHECK(live.connections == 0);
  CHECK(live.coroutines == 0);
  CHECK(live.requests_in_flight == 0);
  CHECK(live.threads == 0);
  CHECK(live.session_exceptions == 0);
}

TEST_CASE("requests still in flight at the drain deadline are cancelled and nothing leaks",
          "[integration][core]") {
  auto cfg = test::test_config();
  cfg.drain_timeout = 200ms;
  test::running_server srv(cfg, test::test_chain(30s));
  std::vector<std::unique_ptr<test::raw_client>> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(std::make_unique<test::raw_client>(srv.port()));
    REQUIRE(clients.back()->send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  }
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(test::wait_until([&] { return srv.server().live().requests_in_flight == 20; }, 5000ms));
  srv.stop_and_wait();
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  auto live = srv.server().live();
  CHECK(live.connections == 0);
  CHECK(live.coroutines == 0);
  CHECK(live.requests_in_flight == 0);
  CHECK(live.threads == 0);
  for (auto& c : clients) CHECK(c->wait_closed());
}
