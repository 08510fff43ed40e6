#include "gateway/middleware/cors.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "gateway/core/arena.hpp"

using namespace gateway;

namespace {

struct test_exchange {
  core::arena mem;
  http::exchange ex;
  explicit test_exchange(std::string_view method = "GET") {
    ex.ctx.mem = &mem;
    ex.req.headers = http::header_list(mem);
    ex.res.headers = http::header_list(mem);
    ex.req.method = method;
  }
};

// A cors_config with `origins`, then changed by `edit`.
template <class Edit>
core::cors_config cors_of(std::vector<std::string> origins, Edit edit) {
  core::cors_config c;
  c.origins = std::move(origins);
  edit(c);
  return c;
}
core::cors_config cors_of(std::vector<std::string> origins) {
  return cors_of(std::move(origins), [](core::cors_config&) {});
}

std::string refusal(const core::cors_config& c) {
  try {
    middleware::compile_cors(c);
    return "";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

struct cors_fixture {
  middleware::metrics_registry metrics{1};
  middleware::cors_policy policy;
  http::layer_ptr layer;
  explicit cors_fixture(const core::cors_config& c) : policy(middleware::compile_cors(c)) {
    layer = middleware::make_cors(policy, metrics.shard(0));
  }
  std::int64_t preflights() { return core::read(metrics.shard(0).stats().cors_preflights); }
  std::int64_t refused() { return core::read(metrics.shard(0).stats().cors_refused); }
};

core::cors_config app_policy() {
  return cors_of({"https://app.example", "http://localhost:5173"}, [](core::cors_config& c) {
    c.methods = {"GET", "POST", "DELETE"};
    c.headers = {"Content-Type", "X-Token"};
    c.expose_headers = {"X-Request-Id", "RateLimit-Remaining"};
    c.credentials = true;
    c.max_age = std::chrono::seconds(600);
  });
}

}  // namespace

TEST_CASE("CORS settings are checked at start-up, naming the key", "[unit][middleware][cors]") {
  CHECK(refusal(app_policy()).empty());
  CHECK(refusal(cors_of({"*"})).empty());
  CHECK_THAT(refusal(cors_of({"*"}, [](auto& c) { c.credentials = true; })),
             Catch::Contains("\"credentials\": true cannot go with \"origins\": \"*\""));
  CHECK_THAT(refusal(cors_of({"*", "https://a.example"})), Catch::Contains("cors.origins: \"*\" stands alone"));
  for (const char* bad : {"https://app.example/", "https://App.example", "app.example", "https://a.example/path",
                          "https://a.example:", "https://a.example:80x", "null", "://x"}) {
    INFO(bad);
    CHECK_THAT(refusal(cors_of({bad})), Catch::Contains(std::string("cors.origins '") + bad + "'"));
  }
  CHECK(refusal(cors_of({"http://[::1]:8080", "http://127.0.0.1:3000"})).empty());
  CHECK_THAT(refusal(cors_of({})), Catch::Contains("cors.origins"));
  CHECK_THAT(refusal(cors_of({"*"}, [](auto& c) { c.methods.clear(); })), Catch::Contains("cors.methods"));
  CHECK_THAT(refusal(cors_of({"*"}, [](auto& c) { c.methods = {"GET POST"}; })), Catch::Contains("cors.methods 'GET POST'"));
  CHECK_THAT(refusal(cors_of({"*"}, [](auto& c) { c.headers = {"X A"}; })), Catch::Contains("cors.headers 'X A'"));
  CHECK_THAT(refusal(cors_of({"https://a.example"}, [](auto& c) {
               c.expose_headers = {"*"};
               c.credentials = true;
             })),
             Catch::Contains("cors.expose_headers"));
  CHECK(refusal(cors_of({"*"}, [](auto& c) { c.expose_headers = {"*"}; })).empty());
}

TEST_CASE("a CORS preflight from an allowed origin is answered 204 with the allowed lists",
          "[unit][middleware][cors]") {
  cors_fixture f(app_policy());
  test_exchange t("OPTIONS");
  t.ex.req.headers.add("Origin", "https://app.example");
  t.ex.req.headers.add("Access-Control-Request-Method", "DELETE");
  t.ex.req.headers.add("Access-Control-Request-Headers", "content-type, x-token");
  http::layer_state state;
  REQUIRE(f.layer->enter(t.ex, state) == http::step::answered);
  const auto& h = t.ex.res.headers;
  CHECK(t.ex.res.status == 204);
  CHECK(t.ex.res.body.empty());
  CHECK(h.value_of("access-control-allow-origin") == "https://app.example");
  CHECK(h.value_of("vary") == "Origin");
  CHECK(h.value_of("access-control-allow-methods") == "GET, POST, DELETE");
  CHECK(h.value_of("access-control-allow-headers") == "Content-Type, X-Token");
  CHECK(h.value_of("access-control-allow-credentials") == "true");
  CHECK(h.value_of("access-control-max-age") == "600");
  CHECK(h.count("access-control-expose-headers") == 0);
  CHECK(f.preflights() == 1);
  CHECK(f.refused() == 0);
}

TEST_CASE("a CORS preflight is refused 403 for an origin, method or header not allowed", "[unit][middleware][cors]") {
  cors_fixture f(app_policy());
  struct attempt {
    const char* origin;
    const char* method;
    const char* headers;
    const char* why;
  };
  for (const attempt& a : {attempt{"https://evil.example", "GET", nullptr, "origin not allowed"},
                           attempt{"https://app.example.evil", "GET", nullptr, "origin not allowed"},
                           attempt{"https://app.example", "PUT", nullptr, "method not allowed"},
                           attempt{"https://app.example", "get", nullptr, "method not allowed"},
                           attempt{"https://app.example", "POST", "content-type, x-secret", "header not allowed"}}) {
    INFO(a.origin << " " << a.method);
    test_exchange t("OPTIONS");
    t.ex.req.headers.add("Origin", a.origin);
    t.ex.req.headers.add("Access-Control-Request-Method", a.method);
    if (a.headers) t.ex.req.headers.add("Access-Control-Request-Headers", a.headers);
    http::layer_state state;
    REQUIRE(f.layer->enter(t.ex, state) == http::step::answered);
    CHECK(t.ex.res.status == 403);
    CHECK(t.ex.res.body == std::string("CORS preflight refused: ") + a.why + "\n");
    CHECK(t.ex.res.headers.count("access-control-allow-origin") == 0);
    CHECK(t.ex.res.headers.value_of("vary") == "Origin");
  }
  CHECK(f.refused() == 5);
  CHECK(f.preflights() == 0);
}

TEST_CASE("CORS: other requests go on and get the response fields on the way back", "[unit][middleware][cors]") {
  cors_fixture f(app_policy());
  SECTION("an allowed origin, whatever answered") {
    for (int status : {200, 401, 429}) {
      test_exchange t("POST");
      t.ex.req.headers.add("Origin", "http://localhost:5173");
      http::layer_state state;
      REQUIRE(f.layer->enter(t.ex, state) == http::step::next);
      t.ex.res.status = status;
      // The backend's own CORS fields are replaced by the route's.
      t.ex.res.headers.add("Access-Control-Allow-Origin", "*");
      t.ex.res.headers.add("access-control-allow-methods", "PATCH");
      t.ex.res.headers.add("Vary", "Accept-Encoding");
      f.layer->leave(t.ex, state);
      const auto& h = t.ex.res.headers;
      CHECK(h.count("access-control-allow-origin") == 1);
      CHECK(h.value_of("access-control-allow-origin") == "http://localhost:5173");
      CHECK(h.value_of("access-control-allow-credentials") == "true");
      CHECK(h.value_of("access-control-expose-headers") == "X-Request-Id, RateLimit-Remaining");
      CHECK(h.count("access-control-allow-methods") == 0);
      CHECK(h.count("vary") == 2);
    }
  }
  SECTION("an origin not allowed, or none: no CORS fields, still Vary: Origin") {
    for (const char* origin : {"https://evil.example", ""}) {
      test_exchange t("GET");
      if (*origin) t.ex.req.headers.add("Origin", origin);
      t.ex.res.headers.add("Access-Control-Allow-Origin", origin);
      http::layer_state state;
      REQUIRE(f.layer->enter(t.ex, state) == http::step::next);
      f.layer->leave(t.ex, state);
      CHECK(t.ex.res.headers.count("access-control-allow-origin") == 0);
      CHECK(t.ex.res.headers.value_of("vary") == "Origin");
    }
  }
  SECTION("an OPTIONS request without Access-Control-Request-Method is not a preflight") {
    test_exchange t("OPTIONS");
    t.ex.req.headers.add("Origin", "https://app.example");
    http::layer_state state;
    CHECK(f.layer->enter(t.ex, state) == http::step::next);
    CHECK(f.preflights() == 0);
  }
  SECTION("a response that varies on Origin already gets no second Vary") {
    test_exchange t("GET");
    t.ex.req.headers.add("Origin", "https://app.example");
    http::layer_state state;
    REQUIRE(f.layer->enter(t.ex, state) == http::step::next);
    t.ex.res.headers.add("Vary", "Accept-Encoding, origin");
    f.layer->leave(t.ex, state);
    CHECK(t.ex.res.headers.count("vary") == 1);
  }
}

TEST_CASE("CORS with any origin answers \"*\" without Vary, and echoes the headers a preflight asks for",
          "[unit][middleware][cors]") {
  cors_fixture f(cors_of({"*"}, [](auto& c) { c.headers = {"*"}; }));
  test_exchange t("OPTIONS");
  t.ex.req.headers.add("Origin", "https://anyone.example");
  t.ex.req.headers.add("Access-Control-Request-Method", "POST");
  t.ex.req.headers.add("Access-Control-Request-Headers", "x-custom, content-type");
  http::layer_state state;
  REQUIRE(f.layer->enter(t.ex, state) == http::step::answered);
  CHECK(t.ex.res.status == 204);
  CHECK(t.ex.res.headers.value_of("access-control-allow-origin") == "*");
  CHECK(t.ex.res.headers.value_of("access-control-allow-headers") == "x-custom, content-type");
  CHECK(t.ex.res.headers.count("vary") == 0);
  CHECK(t.ex.res.headers.count("access-control-allow-credentials") == 0);
  CHECK(t.ex.res.headers.count("access-control-max-age") == 0);

  test_exchange g("GET");
  g.ex.req.headers.add("Origin", "https://anyone.example");
  http::layer_state s2;
  REQUIRE(f.layer->enter(g.ex, s2) == http::step::next);
  f.layer->leave(g.ex, s2);
  CHECK(g.ex.res.headers.value_of("access-control-allow-origin") == "*");
  CHECK(g.ex.res.headers.count("vary") == 0);
}
