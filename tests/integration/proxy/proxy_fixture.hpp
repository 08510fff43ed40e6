#pragma once
// The gateway under test for the proxy suite: the real server in-process,
// a router with "/api/" -> make_proxy, and a recording backend.
#include <memory>
#include <optional>
#include <string>

#include "gateway/app/router.hpp"
#include "gateway/proxy/proxy_handler.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/test_server.hpp"

namespace gateway::test {

inline net::chain_factory proxy_chain(std::string backend_url, std::shared_ptr<proxy::upstream_stats> stats,
                                      std::size_t buffer_size = 0) {
  return [backend_url, stats, buffer_size](net::worker_env& env) {
    auto r = std::make_unique<app::router>();
    proxy::proxy_options o = proxy::options_from_config(*env.cfg);
    o.backend_url = backend_url;
    o.stats = stats;
    if (buffer_size) o.buffer_size = buffer_size;
    r->add_prefix("/api/", proxy::make_proxy(env, std::move(o)));
    return pipeline_of(std::move(r));
  };
}

struct proxy_fixture {
  recording_backend backend;
  std::shared_ptr<proxy::upstream_stats> stats = std::make_shared<proxy::upstream_stats>();
  core::config cfg = test_config();
  std::optional<running_server> srv;

  // Starts the gateway in front of `backend` (or of `url` when given).
  void start(std::string url = {}) {
    srv.emplace(cfg, proxy_chain(url.empty() ? backend.url() : url, stats));
  }
  std::uint16_t port() const { return srv->port(); }
};

}  // namespace gateway::test
