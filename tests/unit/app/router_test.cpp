#include "gateway/app/router.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>

#include "gateway/core/arena.hpp"

using namespace gateway;

namespace {

// Answers with its own status, so a dispatch shows which route ran.
http::layer_ptr answer(int status) { return app::make_fixed_answer(status, "route"); }

struct dispatched {
  int status = 0;
  std::string route;
};

dispatched dispatch(app::router& r, std::string_view path) {
  core::arena mem;
  http::exchange ex;
  ex.req.headers = http::header_list(mem);
  ex.res.headers = http::header_list(mem);
  ex.ctx.mem = &mem;
  ex.req.path = path;
  auto layers = r.select(ex);
  REQUIRE(layers.size() == 1);
  http::layer_state state;
  CHECK(layers[0]->enter(ex, state) == http::step::answered);
  return {ex.res.status, std::string(ex.ctx.route)};
}

// /health exact; /api/, /api/v2/ and / prefixes; the statuses 201-204 tell them apart.
app::router sample_router() {
  app::router r;
  r.add_exact("/health", answer(201));
  r.add_prefix("/api/", answer(202));
  r.add_prefix("/", answer(203));
  r.add_prefix("/api/v2/", answer(204));  // added after a shorter prefix: still wins for its paths
  return r;
}

}  // namespace

TEST_CASE("router: an exact path wins over every prefix, then the longest prefix", "[unit][app]") {
  app::router r = sample_router();
  struct tc {
    const char* path;
    int status;
    const char* route;
  } cases[] = {
      {"/health", 201, "/health"},      {"/health/", 203, "/"},          {"/healthz", 203, "/"},
      {"/api/x", 202, "/api/"},         {"/api/", 202, "/api/"},         {"/api", 202, "/api/"},
      {"/api/v2/x", 204, "/api/v2/"},   {"/api/v2", 204, "/api/v2/"},    {"/api/v3/x", 202, "/api/"},
      {"/apix", 203, "/"},              {"/", 203, "/"},                 {"/other/deep/path", 203, "/"},
  };
  for (const auto& c : cases) {
    INFO(c.path);
    std::string_view pattern;
    REQUIRE(r.match(c.path, &pattern) != nullptr);
    CHECK(pattern == c.route);
    auto d = dispatch(r, c.path);
    CHECK(d.status == c.status);
    CHECK(d.route == c.route);  // what the logs and per-route policies see
  }
}

TEST_CASE("router: no match is a 404 without a fallback, the fallback's answer with one", "[unit][app]") {
  app::router r;
  r.add_exact("/health", answer(201));
  r.add_prefix("/api/", answer(202));
  CHECK(r.match("/apix") == nullptr);
  CHECK(r.match("") == nullptr);
  CHECK(r.match("/HEALTH") == nullptr);  // paths are case-sensitive
  CHECK(dispatch(r, "/nothing").status == 404);
  CHECK(dispatch(r, "/nothing").route.empty());

  r.set_fallback(app::router::single(answer(299)));
  CHECK(r.match("/nothing") == nullptr);  // the fallback is not a route
  CHECK(dispatch(r, "/nothing").status == 299);
  CHECK(dispatch(r, "/api/a").status == 202);
}

TEST_CASE("router: a prefix must end in a slash", "[unit][app]") {
  app::router r;
  CHECK_THROWS_AS(r.add_prefix("/api", answer(200)), std::invalid_argument);
  CHECK_THROWS_AS(r.add_prefix("", answer(200)), std::invalid_argument);
  CHECK(r.match("/api/x") == nullptr);
}
