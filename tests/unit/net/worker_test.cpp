// The worker's chain generations without sockets: a worker with no listener
// runs its event loop on its own thread, a reload swaps the chain there, and
// a request that still holds the old generation keeps it alive.
#include "gateway/net/worker.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include "gateway/http/layer.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// What each generation's chain saw: built, drained (on_drain), destroyed.
struct generation_log {
  std::atomic<int> built{0};
  std::atomic<int> drained{0};
  std::atomic<int> destroyed{0};
};

// A layer that counts its own construction and destruction: the pipeline
// owns it, so it lives exactly as long as its generation's chain.
class logged_layer final : public http::layer {
 public:
  explicit logged_layer(generation_log& log) : log_(log) { ++log_.built; }
  ~logged_layer() override { ++log_.destroyed; }
  http::step enter(http::exchange& ex, http::layer_state&) override {
    ex.res.status = 200;
    return http::step::answered;
  }

 private:
  generation_log& log_;
};

// No routes: every request is answered by the outer layer.
class no_routes final : public http::dispatcher {
 public:
  std::span<const http::layer_ptr> select(http::exchange&) override { return {}; }
  std::size_t max_route_depth() const noexcept override { return 0; }
};

net::chain_factory factory_for(generation_log& log) {
  return [&log](net::worker_env& env) {
    env.on_drain.push_back([&log] { ++log.drained; });
    http::layer_list outer;
    outer.push_back(std::make_unique<logged_layer>(log));
    return std::make_unique<http::pipeline>(std::move(outer), std::make_unique<no_routes>());
  };
}

}  // namespace

TEST_CASE("a reload swaps the worker's chain on its thread, a request holding the old one keeps it alive",
          "[unit][net]") {
  core::config cfg;
  core::live_shard counters;
  core::byte_budget budget(1u << 20);
  net::worker w(0, cfg, counters, budget, 16);
  generation_log first, second;
  w.build_chain(factory_for(first));
  REQUIRE(first.built == 1);
  // What a connection does when a request starts: hold the current generation.
  std::shared_ptr<net::chain_generation> held = w.current_chain();
  REQUIRE(held);

  std::thread loop([&] { w.run(); });
  std::shared_ptr<net::chain_generation> next = w.prepare_chain(factory_for(second));  // off the worker
  REQUIRE(second.built == 1);
  net::chain_generation* const next_raw = next.get();
  std::promise<net::chain_generation*> installed;
  w.install_chain(std::move(next), [&] { installed.set_value(w.current_chain().get()); });  // runs on the worker
  auto seen = installed.get_future();
  REQUIRE(seen.wait_for(5s) == std::future_status::ready);
  CHECK(seen.get() == next_raw);
  // The old generation stopped pooling but still serves the request holding it.
  CHECK(first.drained == 1);
  CHECK(first.destroyed == 0);
  CHECK(second.drained == 0);
  CHECK(first.destroyed == 0);
  held.reset();  // the request ends: the last owner (this thread or the worker's release) destroys it
  CHECK(test::wait_until([&] { return first.destroyed == 1; }, 5000ms));

  // Shutdown drains the current generation and lets the loop run dry.
  w.request_stop();
  loop.join();
  CHECK(second.drained == 1);
  CHECK(second.destroyed == 0);  // the worker still owns it
  CHECK(first.destroyed == 1);
}
