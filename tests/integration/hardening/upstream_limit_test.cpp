#include <catch2/catch.hpp>

#include <thread>

#include "gateway/proxy/concurrency_limit.hpp"
#include "tests/integration/core/test_handlers.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using namespace std::chrono_literals;

TEST_CASE("over the upstream concurrency cap, requests wait briefly and then get 503, a freed slot goes to a waiter",
          "[integration][hardening]") {
  auto cfg = test::test_config();
  cfg.threads = 1;
  core::stat rejected{0};
  auto chain = [&](net::worker_env&) {
    auto r = std::make_unique<app::router>();
    r->add_exact("/health", admin::make_health_page());
    proxy::concurrency_limit_options o;
    o.max_in_flight = 2;
    o.queue_timeout = 150ms;
    auto capped = [&](std::chrono::milliseconds delay) {
      http::layer_list route;
      route.push_back(proxy::make_concurrency_limit(o, &rejected));
      route.push_back(std::make_unique<test::slow_handler>(delay));
      return route;
    };
    r->add_exact("/slow", capped(400ms));
    o.queue_timeout = 2000ms;
    r->add_exact("/slow-patient", capped(100ms));
    return test::pipeline_of(std::move(r));
  };
  test::running_server srv(cfg, chain);

  SECTION("a short queue: two pass, the rest get 503 with Retry-After") {
    std::vector<int> statuses(6);
    std::vector<std::string> retry(6);
    std::vector<std::thread> ts;
    for (int i = 0; i < 6; ++i) {
      ts.emplace_back([&, i] {
        auto r = test::http_request(srv.port(), "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
        statuses[i] = r ? r->status : -1;
        retry[i] = r ? r->header("Retry-After") : "";
      });
    }
    for (auto& t : ts) t.join();
    CHECK(std::count(statuses.begin(), statuses.end(), 200) == 2);
    CHECK(std::count(statuses.begin(), statuses.end(), 503) == 4);
    for (int i = 0; i < 6; ++i)
      if (statuses[i] == 503) CHECK(retry[i] == "1");
    CHECK(rejected.load() == 4);
    auto ok = test::http_request(srv.port(), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(ok->status == 200);
  }
  SECTION("a patient queue: every request is served as slots free up") {
    std::atomic<int> served{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 8; ++i) {
      ts.emplace_back([&] {
        auto r = test::http_request(srv.port(), "GET /slow-patient HTTP/1.1\r\nHost: t\r\n\r\n");
        if (r && r->status == 200) ++served;
      });
    }
    for (auto& t : ts) t.join();
    CHECK(served == 8);
    CHECK(rejected.load() == 0);
  }
}
