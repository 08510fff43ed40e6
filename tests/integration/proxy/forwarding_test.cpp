// The forwarding contract, checked on the bytes the backend receives.
#include <catch2/catch.hpp>

#include <random>

#include "tests/integration/proxy/proxy_fixture.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::string forwarded_tail(std::string_view client_ip, std::string_view host) {
  std::string s = "X-Forwarded-For: " + std::string(client_ip) + "\r\n";
  if (!host.empty()) s += "X-Forwarded-Host: " + std::string(host) + "\r\n";
  s += "X-Forwarded-Proto: http\r\n";
  return s;
}

}  // namespace

TEST_CASE("proxy forwards method, path without the prefix, query and headers byte for byte",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.start();
  const std::string request =
      "GET /api/some/path?x=1&y=%20z HTTP/1.1\r\n"
      "Host: example.test:8080\r\n"
      "X-Mixed-CASE: Value With  Spaces\r\n"
      "accept: */*\r\n"
      "X-Repeated: one\r\n"
      "User-Agent: test/1.0\r\n"
      "X-Repeated: two\r\n"
      "x-repeated: three\r\n"
      "Cookie: a=1; b=2\r\n"
      "\r\n";
  auto r = test::http_request(f.port(), request);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "ok");
  auto got = f.backend.requests();
  REQUIRE(got.size() == 1);
  CHECK(got[0].raw ==
        "GET /some/path?x=1&y=%20z HTTP/1.1\r\n"
        "Host: example.test:8080\r\n"
        "X-Mixed-CASE: Value With  Spaces\r\n"
        "accept: */*\r\n"
        "X-Repeated: one\r\n"
        "User-Agent: test/1.0\r\n"
        "X-Repeated: two\r\n"
        "x-repeated: three\r\n"
        "Cookie: a=1; b=2\r\n" +
            forwarded_tail("127.0.0.1", "example.test:8080") + "\r\n");
}

TEST_CASE("hop-by-hop headers, and the headers Connection names, never reach the backend",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.start();
  const std::string request =
      "POST /api/hop HTTP/1.1\r\n"
      "Host: h\r\n"
      "Connection: keep-alive, X-Private-Hop\r\n"
      "connection: x-other-hop\r\n"
      "X-Private-Hop: secret\r\n"
      "X-Other-Hop: secret2\r\n"
      "Keep-Alive: timeout=5\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "TE: trailers\r\n"
      "Trailer: X-Checksum\r\n"
      "Upgrade: websocket\r\n"
      "X-Kept: yes\r\n"
      "Content-Length: 4\r\n"
      "\r\n"
      "body";
  auto r = test::http_request(f.port(), request);
  REQUIRE(r);
  CHECK(r->status == 200);
  auto got = f.backend.requests();
  REQUIRE(got.size() == 1);
  CHECK(got[0].raw == "POST /hop HTTP/1.1\r\nHost: h\r\nX-Kept: yes\r\nContent-Length: 4\r\n" +
                          forwarded_tail("127.0.0.1", "h") + "\r\nbody");
}

TEST_CASE("Expect: 100-continue is answered by the gateway and not passed on to the backend", "[integration][proxy]") {
  test::proxy_fixture f;
  f.start();
  test::raw_client c(f.port(), 10000ms);
  REQUIRE(c.send("POST /api/upload HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  auto interim = c.read_response();
  REQUIRE(interim);
  CHECK(interim->status == 100);
  REQUIRE(c.send("body"));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  auto got = f.backend.requests();
  REQUIRE(got.size() == 1);
  // The body is on its way with the head: a backend must not answer 100 or 417 to it.
  CHECK(got[0].raw ==
        "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n" + forwarded_tail("127.0.0.1", "h") + "\r\nbody");
}

TEST_CASE("X-Forwarded-For gets the client ip appended and X-Forwarded-Host carries the original Host",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.start();
  SECTION("an existing list, from a client on another loopback address") {
    test::raw_client c(f.port(), 10000ms, "127.0.0.7");
    REQUIRE(c.send("GET /api/x HTTP/1.1\r\nHost: front.example\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n"
                   "X-Forwarded-Host: spoofed\r\nX-Forwarded-Proto: https\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    auto got = f.backend.requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].raw ==
          "GET /x HTTP/1.1\r\nHost: front.example\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.7\r\n"
          "X-Forwarded-Host: front.example\r\nX-Forwarded-Proto: http\r\n\r\n");
  }
  SECTION("repeated X-Forwarded-For fields become one, in the first one's place, ending with the address") {
    // A backend that reads only the first field (Go's Header.Get) must not
    // find a list the client chose there.
    auto r = test::http_request(f.port(),
                                "GET /api/x HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nHost: h\r\nx-forwarded-for: "
                                "10.0.0.2\r\nX-Forwarded-For:\r\n\r\n");
    REQUIRE(r);
    auto got = f.backend.requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].raw ==
          "GET /x HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\nHost: h\r\n"
          "X-Forwarded-Host: h\r\nX-Forwarded-Proto: http\r\n\r\n");
  }
  SECTION("a client's Forwarded field (RFC 7239) does not reach the backend") {
    auto r = test::http_request(
        f.port(), "GET /api/x HTTP/1.1\r\nHost: h\r\nForwarded: for=6.6.6.6;proto=https;host=evil.example\r\n\r\n");
    REQUIRE(r);
    auto got = f.backend.requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].raw == "GET /x HTTP/1.1\r\nHost: h\r\n" + forwarded_tail("127.0.0.1", "h") + "\r\n");
  }
  SECTION("an HTTP/1.0 request without Host gets the backend's authority as Host") {
    test::raw_client c(f.port());
    REQUIRE(c.send("GET /api/old HTTP/1.0\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    auto got = f.backend.requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].raw == "GET /old HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(f.backend.port()) +
                            "\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n");
  }
}

TEST_CASE("empty, binary and 10 MiB bodies arrive exactly", "[integration][proxy]") {
  test::proxy_fixture f;
  f.start();
  test::raw_client c(f.port());

  // Empty body with an explicit Content-Length: 0.
  REQUIRE(c.send("POST /api/empty HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"));
  auto r1 = c.read_response();
  REQUIRE(r1);
  CHECK(r1->status == 200);

  // Every byte value, including CR LF sequences that look like a head's end.
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  binary += "\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
  binary.push_back('\0');
  REQUIRE(c.send("PUT /api/binary HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                 std::to_string(binary.size()) + "\r\n\r\n" + binary));
  auto r2 = c.read_response();
  REQUIRE(r2);
  CHECK(r2->status == 200);

  // 10 MiB, the largest body the gateway accepts.
  std::string big(10u * 1024 * 1024, '\0');
  std::mt19937 rng(42);
  for (auto& ch : big) ch = static_cast<char>(rng());
  REQUIRE(c.send("POST /api/big HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(big.size()) + "\r\n\r\n"));
  REQUIRE(c.send(big));
  auto r3 = c.read_response();
  REQUIRE(r3);
  CHECK(r3->status == 200);

  auto got = f.backend.requests();
  REQUIRE(got.size() == 3);
  CHECK(got[0].raw == "POST /empty HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n" + forwarded_tail("127.0.0.1", "h") +
                          "\r\n");
  CHECK(got[1].head == "PUT /binary HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                           std::to_string(binary.size()) + "\r\n" + forwarded_tail("127.0.0.1", "h") + "\r\n");
  CHECK(got[1].body == binary);
  CHECK(got[2].head == "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 10485760\r\n" +
                           forwarded_tail("127.0.0.1", "h") + "\r\n");
  CHECK(got[2].body.size() == big.size());
  CHECK(got[2].body == big);
}

TEST_CASE("a chunked client body reaches the backend with Content-Length", "[integration][proxy]") {
  test::proxy_fixture f;
  f.start();
  auto r = test::http_request(f.port(),
                              "POST /api/upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-After: 1\r\n\r\n"
                              "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 200);
  auto got = f.backend.requests();
  REQUIRE(got.size() == 1);
  CHECK(got[0].raw == "POST /upload HTTP/1.1\r\nHost: h\r\nX-After: 1\r\nContent-Length: 11\r\n" +
                          forwarded_tail("127.0.0.1", "h") + "\r\nhello world");
}

TEST_CASE("encoded query strings and prefix edge cases reach the backend unchanged, the path normalized",
          "[integration][proxy]") {
  test::proxy_fixture f;
  f.start();
  const std::pair<std::string, std::string> cases[] = {
      {"/api/search?q=a%20b%2Bc&x=%E2%82%AC&empty=&flag", "/search?q=a%20b%2Bc&x=%E2%82%AC&empty=&flag"},
      {"/api?x=1", "/?x=1"},
      {"/api", "/"},
      {"/api/", "/"},
      {"/api/x?", "/x?"},
      {"/api//double/slash/", "/double/slash/"},  // repeated slashes merged before routing
      // Dot-segments are resolved before routing (what the backend gets is
      // what was routed); the query and %2F stay as sent.
      {"/api/a/../b;p=1?%2F=%3F", "/b;p=1?%2F=%3F"},
      {"/api/a%2F..%2Fb", "/a%2F..%2Fb"},
      {"/api/api/x", "/api/x"},
  };
  test::raw_client c(f.port());
  for (const auto& [sent, expected] : cases) {
    REQUIRE(c.send("GET " + sent + " HTTP/1.1\r\nHost: h\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  auto got = f.backend.requests();
  REQUIRE(got.size() == std::size(cases));
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i].target == cases[i].second);
}

TEST_CASE("every common method is forwarded with its body", "[integration][proxy]") {
  test::proxy_fixture f;
  f.backend.set_script([](const test::recorded_request& rq) {
    // A HEAD answer has the head a GET would get, and no body.
    if (rq.method == "HEAD") return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"};
    return test::reply{test::ok_response("method " + rq.method)};
  });
  f.start();
  test::raw_client c(f.port());
  const char* methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "HEAD"};
  for (const char* m : methods) {
    std::string body = std::string(m) == "GET" || std::string(m) == "HEAD" || std::string(m) == "TRACE"
                           ? std::string()
                           : std::string("payload of ") + m;
    REQUIRE(c.send(test::make_request(m, std::string("/api/m/") + m, body)));
    auto r = c.read_response(std::string(m) == "HEAD");
    REQUIRE(r);
    CHECK(r->status == 200);
    if (std::string(m) == "HEAD") {
      CHECK(r->body.empty());
      CHECK(r->header("Content-Length") == "11");  // the backend's, for a GET
    } else {
      CHECK(r->body == std::string("method ") + m);
    }
  }
  auto got = f.backend.requests();
  REQUIRE(got.size() == std::size(methods));
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(methods[i]);
    CHECK(got[i].method == methods[i]);
    CHECK(got[i].target == std::string("/m/") + methods[i]);
    std::string m = methods[i];
    std::string body = (m == "GET" || m == "HEAD" || m == "TRACE") ? std::string() : "payload of " + m;
    std::string length = body.empty() && m != "POST" && m != "PUT"
                             ? std::string()
                             : "Content-Length: " + std::to_string(body.size()) + "\r\n";
    CHECK(got[i].raw == m + " /m/" + m + " HTTP/1.1\r\nHost: test\r\n" + length +
                            forwarded_tail("127.0.0.1", "test") + "\r\n" + body);
  }
}
