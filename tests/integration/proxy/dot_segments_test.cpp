// Dot-segments through the whole gateway: the path is resolved once, where
// the request is parsed, so the router, auth, the rate limit's exemptions,
// per-route policy and the backend all see the same, resolved path.
#include <catch2/catch.hpp>

#include "gateway/core/config.hpp"
#include "gateway/json/reader.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::string get(std::string_view target, std::string_view extra = {}) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

const std::string key = "X-API-Key: dot-key\r\n";

int status_of(std::uint16_t port, const std::string& raw) {
  auto r = test::http_request(port, raw);
  return r ? r->status : -1;
}

}  // namespace

TEST_CASE("dot-segments: routing and auth see the resolved path, the backend receives it",
          "[integration][proxy]") {
  test::recording_backend api, open;
  auto cfg = test::test_config();
  cfg.backend = api.url();
  cfg.api_keys = {"dot-key"};
  std::string err;
  REQUIRE(core::add_route("/open/", open.url(), cfg.routes, err));  // no auth, no rate limit
  test::running_server srv(cfg);
  const auto port = srv.port();

  // /api/../logs is /logs: it needs the key and answers the log, not a proxy.
  for (const char* target : {"/api/../logs", "/api/%2e%2e/logs", "/api/.%2E/logs", "/api/./../logs"}) {
    INFO(target);
    CHECK(status_of(port, get(target)) == 401);
    auto r = test::http_request(port, get(target, key));
    REQUIRE(r);
    CHECK(r->status == 200);
    auto doc = json::parse(r->body);
    REQUIRE(doc);
    CHECK(doc.value().is_array());
  }
  CHECK(api.request_count() == 0);

  // A route without auth next to one with it: climbing out of /open/ into
  // /api/ is /api/'s business, key and all.
  CHECK(status_of(port, get("/open/../api/x")) == 401);
  CHECK(status_of(port, get("/open/%2E%2E/api/x")) == 401);
  CHECK(open.request_count() == 0);
  CHECK(api.request_count() == 0);
  REQUIRE(status_of(port, get("/open/../api/x?q=1", key)) == 200);
  REQUIRE(api.request_count() == 1);
  CHECK(api.requests().back().target == "/x?q=1");
  CHECK(open.request_count() == 0);
  // And the other way: /api/../open/ is the open route, no key needed.
  REQUIRE(status_of(port, get("/api/../open/page")) == 200);
  REQUIRE(open.request_count() == 1);
  CHECK(open.requests().back().target == "/page");

  // A path that reaches /api/ only once normalized (an escape of an
  // unreserved character, repeated slashes) meets /api/'s auth, not the
  // open route's or the 404: backends decode and merge those themselves.
  for (const char* target : {"//api/x", "/%61pi/x", "/%61%70%69/x", "//open/..//api/x"}) {
    INFO(target);
    CHECK(status_of(port, get(target)) == 401);
  }
  CHECK(open.request_count() == 1);

  // What the backend receives is the resolved path; %2F is not a separator.
  const std::pair<const char*, const char*> forwarded[] = {
      {"/api/a/./b/../c", "/a/c"},      {"/api/a/b/%2e%2e/%2E/c?x=/../y", "/a/c?x=/../y"},
      {"/api/a/b/..", "/a/"},           {"/api/a%2F..%2Fb", "/a%2F..%2Fb"},
      {"http://test/api/a/../b", "/b"}, {"//api//a/%62", "/a/b"},
  };
  for (const auto& [sent, received] : forwarded) {
    INFO(sent);
    REQUIRE(status_of(port, get(sent, key)) == 200);
    CHECK(api.requests().back().target == received);
  }

  // Above the root: 400, and nothing reaches a backend.
  const std::size_t before = api.request_count() + open.request_count();
  for (const char* target : {"/..", "/api/../../x", "/open/%2e%2e/%2e%2e/etc/passwd"}) {
    INFO(target);
    CHECK(status_of(port, get(target, key)) == 400);
  }
  CHECK(api.request_count() + open.request_count() == before);
}

TEST_CASE("dot-segments: rate-limit exemptions see the resolved path", "[integration][proxy]") {
  auto cfg = test::test_config();
  cfg.api_keys = {"dot-key"};
  cfg.rate_limit = 2;
  cfg.rate_limit_exempt = {"/health"};
  test::running_server srv(cfg);
  test::raw_client c(srv.port());
  auto status = [&](const std::string& target) {
    REQUIRE(c.send(get(target, key)));
    auto r = c.read_response();
    REQUIRE(r);
    return r->status;
  };
  // Exempt however it is spelt: never counted.
  for (int i = 0; i < 5; ++i) {
    CHECK(status("/api/../health") == 200);
    CHECK(status("/metrics/../health") == 200);
  }
  // Not exempt however it is spelt: /metrics counts.
  CHECK(status("/health/../metrics") == 200);
  CHECK(status("/api/./../metrics") == 200);
  CHECK(status("/metrics") == 429);
  CHECK(status("/./health") == 200);
}
