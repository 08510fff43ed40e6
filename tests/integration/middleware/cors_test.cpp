// CORS per route through the whole gateway: preflights answered before the
// route's rate limit and auth, the response fields on the backend's answers
// and on the gateway's own 401 and 429, and the start-up errors.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <string>

#include "gateway/core/config.hpp"
#include "gateway/core/config_file.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

const std::string app_origin = "https://app.example";

std::string preflight(std::string_view origin, std::string_view method, std::string_view headers = {}) {
  std::string r = "OPTIONS /svc/items HTTP/1.1\r\nHost: gw\r\nOrigin: " + std::string(origin) +
                  "\r\nAccess-Control-Request-Method: " + std::string(method) + "\r\n";
  if (!headers.empty()) r += "Access-Control-Request-Headers: " + std::string(headers) + "\r\n";
  return r + "\r\n";
}

std::string get(std::string_view path, std::string_view extra) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: gw\r\n" + std::string(extra) + "\r\n";
}

core::config cors_config(const test::recording_backend& svc, const test::recording_backend& pub) {
  auto cfg = test::test_config();
  const std::string text = R"({
    "api_key": ["key-1"],
    "rate_limit": "3/min",
    "rate_limit_exempt": ["/metrics", "/health"],
    "routes": [
      {"prefix": "/svc/", "backend": ")" + svc.url() + R"(", "auth": true, "rate_limit": true,
       "cors": {"origins": [")" + app_origin + R"(", "http://localhost:5173"], "methods": ["GET", "POST", "PUT"],
                "headers": ["Content-Type", "X-API-Key"], "credentials": true, "max_age": "10m",
                "expose_headers": ["X-Request-Id", "RateLimit-Remaining"]}},
      {"prefix": "/pub/", "backend": ")" + pub.url() + R"(", "cors": {"origins": "*"}}
    ]})";
  std::string err;
  if (!core::apply_config_text(text, "cors.json", cfg, err)) throw std::runtime_error(err);
  return cfg;
}

std::string temp_file(const std::string& text) {
  char name[] = "/tmp/gateway-cors-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(name) << text;
  return name;
}

}  // namespace

TEST_CASE("CORS preflights are answered by the gateway before the route's rate limit and auth",
          "[integration][middleware][cors]") {
  test::recording_backend svc, pub;
  test::running_server srv(cors_config(svc, pub));

  // More preflights than the route's budget of 3, none with credentials:
  // every one is answered, none reaches the backend or the limiter.
  for (int i = 0; i < 6; ++i) {
    auto r = test::http_request(srv.port(), preflight(app_origin, "PUT", "content-type, x-api-key"));
    REQUIRE(r);
    INFO(i);
    CHECK(r->status == 204);
    CHECK(r->body.empty());
    CHECK(r->header("access-control-allow-origin") == app_origin);
    CHECK(r->header("access-control-allow-methods") == "GET, POST, PUT");
    CHECK(r->header("access-control-allow-headers") == "Content-Type, X-API-Key");
    CHECK(r->header("access-control-allow-credentials") == "true");
    CHECK(r->header("access-control-max-age") == "600");
    CHECK(r->header("vary") == "Origin");
    CHECK(r->count("www-authenticate") == 0);
    CHECK(r->count("ratelimit-limit") == 0);
  }
  CHECK(svc.request_count() == 0);
  CHECK(test::counter(srv.port(), "cors_preflights") == 6);

  // Refused: an origin, a method or a header not allowed.
  for (const auto& bad : {preflight("https://evil.example", "GET"), preflight(app_origin, "DELETE"),
                          preflight(app_origin, "POST", "x-secret")}) {
    auto r = test::http_request(srv.port(), bad);
    REQUIRE(r);
    CHECK(r->status == 403);
    CHECK_THAT(r->body, Catch::StartsWith("CORS preflight refused: "));
    CHECK(r->count("access-control-allow-origin") == 0);
  }
  CHECK(test::counter(srv.port(), "cors_refused") == 3);
  CHECK(svc.request_count() == 0);

  // The budget is untouched: three requests with the key pass, the fourth is limited.
  for (int i = 0; i < 3; ++i)
    CHECK(test::http_request(srv.port(), get("/svc/items", "X-API-Key: key-1\r\n"))->status == 200);
  CHECK(test::http_request(srv.port(), get("/svc/items", "X-API-Key: key-1\r\n"))->status == 429);
  // ... and a preflight still gets its answer.
  CHECK(test::http_request(srv.port(), preflight(app_origin, "GET"))->status == 204);
}

TEST_CASE("CORS fields reach the client on the backend's answers and on the gateway's 401 and 429",
          "[integration][middleware][cors]") {
  test::recording_backend svc, pub;
  // A backend with CORS fields of its own: the route's answer replaces them.
  svc.set_script([](const test::recorded_request&) {
    return test::reply{test::ok_response("ok", "Access-Control-Allow-Origin: *\r\nVary: Accept-Encoding\r\n")};
  });
  test::running_server srv(cors_config(svc, pub));
  const std::string origin = "Origin: " + app_origin + "\r\n";

  auto unauthorised = test::http_request(srv.port(), get("/svc/items", origin));
  REQUIRE(unauthorised);
  CHECK(unauthorised->status == 401);
  CHECK(unauthorised->header("access-control-allow-origin") == app_origin);
  CHECK(unauthorised->header("access-control-allow-credentials") == "true");
  CHECK(unauthorised->header("access-control-expose-headers") == "X-Request-Id, RateLimit-Remaining");
  CHECK(unauthorised->header("vary") == "Origin");

  auto ok = test::http_request(srv.port(), get("/svc/items", origin + "X-API-Key: key-1\r\n"));
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(ok->count("access-control-allow-origin") == 1);
  CHECK(ok->header("access-control-allow-origin") == app_origin);
  CHECK(ok->header("access-control-allow-credentials") == "true");
  CHECK(ok->count("vary") == 2);  // the backend's Accept-Encoding and Origin
  CHECK(ok->header("ratelimit-remaining") == "1");
  // The backend still sees the Origin (it is the client's request).
  CHECK(svc.requests().back().head.find("Origin: " + app_origin) != std::string::npos);

  // A request from an origin not allowed gets no CORS fields (the browser
  // then keeps the answer from the page), but Vary all the same.
  auto other = test::http_request(srv.port(), get("/svc/items", "Origin: https://evil.example\r\nX-API-Key: key-1\r\n"));
  REQUIRE(other);
  CHECK(other->status == 200);
  CHECK(other->count("access-control-allow-origin") == 0);
  CHECK(other->count("access-control-allow-credentials") == 0);
  CHECK(other->header("vary") == "Accept-Encoding");
  CHECK(other->count("vary") == 2);

  auto limited = test::http_request(srv.port(), get("/svc/items", "Origin: http://localhost:5173\r\nX-API-Key: key-1\r\n"));
  REQUIRE(limited);
  CHECK(limited->status == 429);
  CHECK(limited->header("access-control-allow-origin") == "http://localhost:5173");
  CHECK(limited->header("access-control-expose-headers") == "X-Request-Id, RateLimit-Remaining");
  CHECK(!limited->header("retry-after").empty());

  // A route open to any origin: "*", no credentials, no Vary.
  auto open = test::http_request(srv.port(), get("/pub/x", "Origin: https://anyone.example\r\n"));
  REQUIRE(open);
  CHECK(open->status == 200);
  CHECK(open->header("access-control-allow-origin") == "*");
  CHECK(open->count("access-control-allow-credentials") == 0);
  CHECK(open->count("vary") == 0);
  auto open_preflight = test::http_request(
      srv.port(), "OPTIONS /pub/x HTTP/1.1\r\nHost: gw\r\nOrigin: https://anyone.example\r\n"
                  "Access-Control-Request-Method: POST\r\n\r\n");
  REQUIRE(open_preflight);
  CHECK(open_preflight->status == 204);
  CHECK(open_preflight->header("access-control-allow-origin") == "*");
  CHECK(open_preflight->header("access-control-allow-methods") == "GET, HEAD, POST");
  CHECK(pub.request_count() == 1);

  // Routes without "cors" are as before.
  CHECK(test::http_request(srv.port(), get("/health", origin))->count("access-control-allow-origin") == 0);
}

TEST_CASE("CORS settings browsers would refuse stop the gateway at start-up with exit 2",
          "[integration][middleware][cors]") {
  struct bad_cors {
    std::string cors;
    std::string message;
  };
  const std::vector<bad_cors> cases = {
      {R"({"origins": "*", "credentials": true})",
       "route /c/: cors: \"credentials\": true cannot go with \"origins\": \"*\""},
      {R"({"origins": ["https://app.example/"]})", "route /c/: cors.origins 'https://app.example/': expected"},
      {R"({"origins": ["https://a.example"], "methods": ["GET", "BAD METHOD"]})",
       "route /c/: cors.methods 'BAD METHOD': not a valid name"},
  };
  for (const auto& c : cases) {
    INFO(c.cors);
    const std::string path =
        temp_file(R"({"routes": [{"prefix": "/c/", "backend": "http://127.0.0.1:9", "cors": )" + c.cors + "}]}");
    test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--config", path, "--listen", "127.0.0.1:0",
                            "--access-log", "off"});
    const auto status = gw.wait_exit(15s);
    ::unlink(path.c_str());
    REQUIRE(status);
    CHECK(*status == 2);
    CHECK_THAT(gw.err(), Catch::Contains("gateway: " + c.message));
  }
}
