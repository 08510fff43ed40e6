#pragma once
// Assembly: the shared state (registries, tables, keys) built once from the
// config, the per-worker chain built from it, and the server that runs it.
//
//   body limit (net/connection) -> request id -> metrics -> logging -> compression
//   -> router -> per route: [rate limit] -> [auth] -> [validation] -> handler
//
// Routes: /health and /metrics (open), /logs and /logs/clear (rate limit,
// auth), /api/ (rate limit, auth, --validate rules, proxy to --backend),
// each --route / config-file route (its own switches, proxy to its backend),
// and for any other path rate limit -> auth -> 404 (as the seed answered).
// Resolving the route first and giving each route its own small chain keeps
// the per-route policy free at request time: no lookup, no allocation.
//
// Reload (SIGHUP, or instance::reload): the new settings are checked and a
// new chain is built for every worker on the calling thread, then each
// worker swaps it in on its own thread; a request already started finishes
// on the chain it started with (net/connection holds it).
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gateway/core/config.hpp"
#include "gateway/middleware/middleware.hpp"
#include "gateway/net/server.hpp"
#include "gateway/proxy/demo_backend.hpp"
#include "gateway/proxy/upstream_pool.hpp"

namespace gateway::app {

// What a chain is built from and keeps referring to (validation rules, keys,
// the limiter): immutable once built; every chain holds the one it was built
// with, so a reload never changes a chain in use.
struct chain_settings {
  core::config cfg;  // resolved (threads, backend)
  middleware::api_key_set keys;
  std::unique_ptr<middleware::jwt_verifier> jwt;     // null without --jwt-secret
  std::shared_ptr<middleware::rate_limiter> limiter;  // null when --rate-limit off
};

// Everything the chains of all workers share, across reloads. Lives longer
// than the server.
struct shared_state {
  shared_state(const core::config& cfg, std::FILE* access_log_out);
  middleware::metrics_registry metrics;
  middleware::log_ring logs;
  middleware::access_log access;
  std::shared_ptr<proxy::upstream_stats> upstream = std::make_shared<proxy::upstream_stats>();
  std::atomic<std::uint64_t> upstream_busy{0};  // 503s from --upstream-max-concurrent
  // The limiter of the running settings (a reload keeps it when the rate
  // limit settings are unchanged, so clients keep their counts). Written
  // by reload under `mu`; read it through current_limiter() from other threads.
  std::shared_ptr<middleware::rate_limiter> limiter;
  std::shared_ptr<middleware::rate_limiter> current_limiter() const;
  mutable std::mutex mu;
};

// Builds (throws std::exception naming the problem) the settings a chain
// needs; `reuse_limiter` is kept when its options match.
std::shared_ptr<const chain_settings> make_settings(core::config cfg,
                                                   std::shared_ptr<middleware::rate_limiter> reuse_limiter = nullptr);

// The chain every worker runs, built per worker (at start-up and on reload).
net::chain_factory make_chain_factory(std::shared_ptr<const chain_settings> settings, shared_state& state);
// The same from a config (settings built here, throws like make_settings;
// the limiter is state.limiter when set, else a new one stored there).
net::chain_factory make_chain_factory(const core::config& cfg, shared_state& state);

// Settings that only a restart can change (listener, threads, client-side
// limits and timeouts, log sinks). Empty when `a` and `b` agree on them,
// else the names of those that differ, as config keys.
std::string restart_only_changes(const core::config& a, const core::config& b);

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
  const core::config& cfg() const noexcept { return cfg_; }  // as started
  bool demo_backend() const noexcept { return demo_ != nullptr; }

  // Applies new settings to the running gateway (what SIGHUP does after
  // reading the file). Refused, with `message` saying why and nothing
  // changed, when a setting needs a restart or the settings cannot be
  // built (a bad key file, an unresolvable backend). On success returns
  // once every running worker has the new chain. Any thread but a worker's;
  // one reload at a time.
  bool reload(core::config next, std::string& message);
  // Re-reads the --config file and re-applies the command line over it.
  bool reload_from_sources(std::string& message);
  std::uint64_t reloads() const noexcept;
  std::shared_ptr<const chain_settings> settings() const;

 private:
  core::config cfg_;
  std::unique_ptr<proxy::demo_backend> demo_;  // when no --backend is given
  std::unique_ptr<shared_state> state_;
  std::unique_ptr<net::server> server_;
  std::vector<net::worker*> workers_;  // filled by the start-up chain factory
  mutable std::mutex reload_mu_;       // one reload at a time; guards settings_, reloads_
  std::shared_ptr<const chain_settings> settings_;
  std::uint64_t reloads_ = 0;
};

// Validates `cfg` as the gateway would start it (settings, key files,
// backends, the listen address syntax) without binding; for --check-config.
bool check_config(const core::config& cfg, std::string& message);

// Runs the gateway until SIGINT/SIGTERM (SIGHUP reloads the --config file);
// with cfg.check_config, only checks. Returns the process exit code.
int run(const core::config& cfg);

}  // namespace gateway::app
