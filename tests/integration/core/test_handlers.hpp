#pragma once
// Handlers used by the core integration tests: an echo of the request line
// and body size, and a slow route that waits on a timer (never sleeps).
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <string>

#include "gateway/admin/health.hpp"
#include "gateway/app/router.hpp"
#include "gateway/net/worker.hpp"
#include "tests/support/test_server.hpp"

namespace gateway::test {

class echo_handler final : public http::layer {
 public:
  http::step enter(http::exchange& ex, http::layer_state&) override {
    std::string s;
    s.append(ex.req.method).append(" ").append(ex.req.target).append(" ");
    s.append(std::to_string(ex.req.body.size()));
    // A cheap checksum so tests can tell the body arrived intact.
    std::uint64_t sum = 0;
    for (unsigned char c : ex.req.body) sum = sum * 31 + c;
    s.append(" ").append(std::to_string(sum));
    http::respond_text(ex, 200, s);
    return http::step::answered;
  }
};

class slow_handler final : public http::layer {
 public:
  explicit slow_handler(std::chrono::milliseconds d) : delay_(d) {}
  http::step enter(http::exchange&, http::layer_state&) override { return http::step::wait; }
  asio::awaitable<http::step> await(http::exchange& ex, http::layer_state&) override {
    asio::steady_timer t(co_await asio::this_coro::executor, delay_);
    co_await t.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    http::respond_text(ex, 200, "slow done");
    co_return http::step::answered;
  }

 private:
  std::chrono::milliseconds delay_;
};

inline net::chain_factory test_chain(std::chrono::milliseconds slow = std::chrono::milliseconds(300)) {
  return [slow](net::worker_env&) {
    auto r = std::make_unique<app::router>();
    r->add_exact("/health", admin::make_health_page());
    r->add_prefix("/echo/", std::make_unique<echo_handler>());
    r->add_exact("/slow", std::make_unique<slow_handler>(slow));
    return pipeline_of(std::move(r));
  };
}

inline std::uint64_t checksum(std::string_view body) {
  std::uint64_t sum = 0;
  for (unsigned char c : body) sum = sum * 31 + c;
  return sum;
}

}  // namespace gateway::test
