// The allocation gate: heap allocations (global operator new calls) made by
// the gateway's threads per proxied request in steady state, through the
// whole chain (request id, metrics, logging, decompression, rate limit,
// auth, router, proxy) to an in-process backend. It does not depend on the
// machine's speed, so its budget is tight: a new allocation per request on
// the hot path fails it (the second test shows that).
#include "tests/perf/alloc_counter.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>

#include "gateway/app/instance.hpp"
#include "gateway/core/config_file.hpp"
#include "gateway/net/server.hpp"
#include "tests/perf/blocking_http.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// The budget, in operator new calls per proxied request in steady state
// (README, "Performance gates"): none. Measured 0.0 on every run since the
// proxy's response buffers come from a per-worker pool, a body-sized arena
// allocation no longer pushes the small ones into a fresh block, and
// upstream deadlines are enforced by the worker's connection sweep instead
// of racing a timer with operator|| (which cost four allocations and two
// coroutine frames per request). History: 8.0 at 475933f, 4.0 at 0e19c62.
// GATEWAY_PERF_ALLOC_TRACE=N prints the stacks. The slack (0.5) covers the
// few allocations that are not per request (timers, pool upkeep) spread over
// the measured requests; it is below 1, so one allocation per request
// fails the gate.
constexpr double allocation_budget_per_request = 0.5;

// One connection: with several, how often Asio's per-thread cache of
// coroutine frames is hit depends on how requests interleave, and the count
// wanders (10 to 18 per request at 4 connections); sequential requests give
// the same figure on every run.
constexpr unsigned connections = 1;
// Warm-up: more requests than the /logs ring holds (10,000 by default), so
// the ring is full and recycling its entries, as in steady state (before
// that, each request leaves 4 more allocations in the ring).
constexpr unsigned warmup_per_connection = 12000;
constexpr unsigned measured_per_connection = 20000;

core::config gate_config(std::uint16_t backend_port) {
  core::config c = test::test_config();  // loopback, port 0, 2 workers, access log off
  c.backend = "http://127.0.0.1:" + std::to_string(backend_port);
  c.api_keys = {"perf-key"};
  c.rate_limit = 100000000;  // on the path, never answering 429
  c.rate_limit_window = 60s;
  return c;
}

const std::string request = "GET /api/items?page=1 HTTP/1.1\r\nHost: perf\r\nX-API-Key: perf-key\r\n\r\n";

struct allocation_figures {
  double allocations_per_request = 0;
  double deallocations_per_request = 0;
  std::uint64_t failed = 0;
};

// Warms the gateway on `port` up, then counts what its threads allocate
// over the measured requests. The clients' connections stay open across
// both phases, so no per-connection cost lands in the measurement.
allocation_figures measure(std::uint16_t port, const std::string& req = request) {
  perf::blocking_clients clients(port, connections, req);
  allocation_figures f;
  f.failed += clients.run(warmup_per_connection);
  // GATEWAY_PERF_ALLOC_TRACE=N prints the call stacks of the first N
  // allocations of the measured phase (to find what a failing gate counts).
  const char* trace = std::getenv("GATEWAY_PERF_ALLOC_TRACE");
  if (trace != nullptr) perf::trace_next_allocations(static_cast<unsigned>(std::atoi(trace)));
  const std::uint64_t a0 = perf::counted_allocations();
  const std::uint64_t d0 = perf::counted_deallocations();
  f.failed += clients.run(measured_per_connection);
  const double n = static_cast<double>(connections) * measured_per_connection;
  f.allocations_per_request = static_cast<double>(perf::counted_allocations() - a0) / n;
  f.deallocations_per_request = static_cast<double>(perf::counted_deallocations() - d0) / n;
  if (trace != nullptr) WARN("allocations traced in the measured phase:\n" << perf::traced_allocations());
  return f;
}

// A layer that makes one heap allocation per request: the regression the
// gate must catch.
void* volatile sink = nullptr;

class allocating_layer final : public http::layer {
 public:
  http::step enter(http::exchange&, http::layer_state&) override {
    sink = ::operator new(64);
    ::operator delete(sink);
    return http::step::next;
  }
};

// The gateway's own pipeline (app::make_pipeline_factory), optionally with
// the allocating layer outermost, served by a net::server as app::instance
// does.
allocation_figures measure_custom_chain(std::uint16_t backend_port, bool inject) {
  core::config cfg = gate_config(backend_port);
  app::shared_state state(cfg, stdout);
  net::chain_factory inner = app::make_pipeline_factory(app::make_settings(app::resolved(cfg)), state);
  net::chain_factory chain = [&inner, inject](net::worker_env& env) {
    auto p = inner(env);
    if (inject) p->wrap(std::make_unique<allocating_layer>());
    return p;
  };
  net::server srv(cfg, chain);
  srv.start();
  const allocation_figures f = measure(srv.port());
  srv.stop();
  srv.wait();
  return f;
}

}  // namespace

TEST_CASE("a proxied request through the whole chain costs at most the budgeted heap allocations in steady state",
          "[perf][alloc]") {
  perf::exclude_this_thread();
  perf::blocking_backend backend;
  allocation_figures f;
  {
    app::instance gw(gate_config(backend.port()), stdout);
    gw.start();
    f = measure(gw.port());
  }
  WARN("allocation gate: " << f.allocations_per_request << " allocations and " << f.deallocations_per_request
                           << " deallocations per proxied request (budget " << allocation_budget_per_request << ")");
  REQUIRE(f.failed == 0);
  CHECK(backend.requests() == connections * (warmup_per_connection + measured_per_connection));
  CHECK(f.allocations_per_request <= allocation_budget_per_request);
}

TEST_CASE("the allocation gate fails when a layer adds one heap allocation per request", "[perf][alloc]") {
  perf::exclude_this_thread();
  perf::blocking_backend backend;
  const allocation_figures clean = measure_custom_chain(backend.port(), false);
  const allocation_figures injected = measure_custom_chain(backend.port(), true);
  WARN("allocation gate, injected: " << clean.allocations_per_request << " -> " << injected.allocations_per_request
                                     << " allocations per request");
  REQUIRE(clean.failed == 0);
  REQUIRE(injected.failed == 0);
  // The gateway's own chain, built this way, is within budget ...
  CHECK(clean.allocations_per_request <= allocation_budget_per_request);
  // ... and the injected allocation is seen in full (the extra layer's
  // coroutine frame often misses Asio's frame cache and counts too) and
  // trips it.
  CHECK(injected.allocations_per_request - clean.allocations_per_request >= 1.0);
  CHECK(injected.allocations_per_request > allocation_budget_per_request);
}

TEST_CASE("a request on a route with header rules, substitutions, Host upstream and CORS allocates nothing either",
          "[perf][alloc]") {
  perf::exclude_this_thread();
  perf::blocking_backend backend;
  core::config cfg = gate_config(backend.port());
  // Every feature of the route on the path: CORS (an allowed origin, so the
  // response fields are added), the rate limit and auth, request fields set,
  // added with substitutions and removed, response fields set and removed.
  const std::string text = R"({"routes": [{"prefix": "/rules/", "backend": "http://127.0.0.1:)" +
                           std::to_string(backend.port()) + R"(", "auth": true, "rate_limit": true,
    "host": "upstream",
    "request_headers": {"set": {"X-Client": "${client_ip}", "X-Static": "gateway"},
                        "add": {"X-Trace": "${request_id}@${route}"}, "remove": ["Cookie"]},
    "response_headers": {"set": {"Cache-Control": "no-store"}, "add": {"X-Served-By": "${route}"},
                         "remove": ["Server"]},
    "cors": {"origins": ["https://app.example"], "credentials": true, "expose_headers": ["X-Request-Id"]}}]})";
  std::string err;
  REQUIRE(core::apply_config_text(text, "perf.json", cfg, err));
  const std::string rules_request =
      "GET /rules/items?page=1 HTTP/1.1\r\nHost: perf\r\nX-API-Key: perf-key\r\nOrigin: https://app.example\r\n"
      "Cookie: a=1\r\n\r\n";
  allocation_figures f;
  {
    app::instance gw(cfg, stdout);
    gw.start();
    f = measure(gw.port(), rules_request);
  }
  WARN("allocation gate, route with header rules and CORS: " << f.allocations_per_request << " allocations per request");
  REQUIRE(f.failed == 0);
  CHECK(backend.requests() == connections * (warmup_per_connection + measured_per_connection));
  CHECK(f.allocations_per_request <= allocation_budget_per_request);
}
