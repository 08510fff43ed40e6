#pragma once
// Assembly: the shared state (registries, tables, keys) built once from the
// config, the per-worker chain built from it, and the server that runs it.
//
//   body limit (net/connection) -> request id -> metrics -> logging -> compression
//   -> rate limit -> auth -> router: /health, /metrics, /logs, /logs/clear,
//      /api/ (validation rules, then the proxy)
#include <cstdio>
#include <memory>

#include "gateway/core/config.hpp"
#include "gateway/middleware/middleware.hpp"
#include "gateway/net/server.hpp"
#include "gateway/proxy/demo_backend.hpp"
#include "gateway/proxy/upstream_pool.hpp"

namespace gateway::app {

// Everything the chains of all workers share. Lives longer than the server.
struct shared_state {
  shared_state(const core::config& cfg, std::FILE* access_log_out);
  middleware::metrics_registry metrics;
  middleware::log_ring logs;
  std::unique_ptr<middleware::rate_limiter> limiter;  // null when --rate-limit off
  middleware::api_key_set keys;
  std::unique_ptr<middleware::jwt_verifier> jwt;     // null without --jwt-secret
  middleware::access_log access;
  std::shared_ptr<proxy::upstream_stats> upstream = std::make_shared<proxy::upstream_stats>();
};

// The chain every worker runs, built once per worker at start-up.
net::chain_factory make_chain_factory(const core::config& cfg, shared_state& state);

// One gateway: shared state plus server. Construction validates the config
// further (key files, addresses) and binds; throws std::exception with a
// message naming the problem.
class instance {
 public:
  explicit instance(core::config cfg, std::FILE* access_log_out = stdout);
  ~instance();
  void start();
  void stop() noexcept;
  void wait();
  std::uint16_t port() const noexcept { return server_->port(); }
  net::server& server() noexcept { return *server_; }
  shared_state& state() noexcept { return *state_; }
  const core::config& cfg() const noexcept { return cfg_; }
  bool demo_backend() const noexcept { return demo_ != nullptr; }

 private:
  core::config cfg_;
  std::unique_ptr<proxy::demo_backend> demo_;  // when no --backend is given
  std::unique_ptr<shared_state> state_;
  std::unique_ptr<net::server> server_;
};

// Runs the gateway until SIGINT/SIGTERM; returns the process exit code.
int run(const core::config& cfg);

}  // namespace gateway::app
