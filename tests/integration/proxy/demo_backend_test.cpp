// The demo backend (the gateway's built-in /api/ answer when no --backend is
// given): its JSON description of a request, directly and through the proxy,
// and a clean stop with connections open.
#include "gateway/proxy/demo_backend.hpp"

#include <catch2/catch.hpp>

#include <memory>

#include "tests/integration/proxy/proxy_fixture.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

TEST_CASE("the demo backend describes each request as JSON, directly and through the proxy",
          "[integration][proxy]") {
  proxy::demo_backend demo;
  REQUIRE(demo.port() != 0);
  auto direct = test::http_request(demo.port(), "POST /hello?x=1 HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\nabc");
  REQUIRE(direct);
  CHECK(direct->status == 200);
  CHECK(direct->header("Content-Type") == "application/json");
  CHECK(direct->body ==
        "{\"backend\":\"gateway demo backend\",\"method\":\"POST\",\"path\":\"/hello\",\"query\":\"x=1\","
        "\"headers\":[[\"Host\",\"d\"],[\"Content-Length\",\"3\"]],\"body_length\":3}\n");

  auto stats = std::make_shared<proxy::upstream_stats>();
  test::running_server srv(test::test_config(), test::proxy_chain(demo.url(), stats));
  test::raw_client c(srv.port());
  REQUIRE(c.send("GET /api/it/works?y=2 HTTP/1.1\r\nHost: gw\r\n\r\n"));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body ==
        "{\"backend\":\"gateway demo backend\",\"method\":\"GET\",\"path\":\"/it/works\",\"query\":\"y=2\","
        "\"headers\":[[\"Host\",\"gw\"],[\"X-Forwarded-For\",\"127.0.0.1\"],[\"X-Forwarded-Host\",\"gw\"],"
        "[\"X-Forwarded-Proto\",\"http\"]],\"body_length\":0}\n");
  // A chunked request body through the proxy arrives counted.
  REQUIRE(c.send("PUT /api/up HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n"));
  auto r2 = c.read_response();
  REQUIRE(r2);
  CHECK(r2->body.find("\"body_length\":4") != std::string::npos);
  // The backend counts a request once its write completes, which can be just
  // after the client has read the answer.
  CHECK(test::wait_until([&] { return demo.requests_served() == 3; }, 5000ms));
}

TEST_CASE("the demo backend stops cleanly with connections still open", "[integration][proxy]") {
  proxy::demo_backend demo;
  test::raw_client idle(demo.port());
  test::raw_client busy(demo.port());
  REQUIRE(busy.send("GET / HTTP/1.1\r\nHost: d\r\n\r\n"));
  REQUIRE(busy.read_response());
  REQUIRE(test::wait_until([&] { return demo.open_connections() == 2; }, 5000ms));
  demo.stop();
  CHECK(demo.open_connections() == 0);
  CHECK(idle.wait_closed());
  CHECK(busy.wait_closed());
  demo.stop();  // idempotent
}
