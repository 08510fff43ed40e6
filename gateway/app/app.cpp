#include "gateway/app/app.hpp"

#include <csignal>
#include <cstdio>
#include <pthread.h>
#include <stdexcept>
#include <thread>

#include "gateway/admin/admin.hpp"
#include "gateway/admin/health.hpp"
#include "gateway/app/router.hpp"
#include "gateway/core/memory.hpp"
#include "gateway/middleware/compression.hpp"
#include "gateway/proxy/proxy_handler.hpp"

namespace gateway::app {

namespace {

core::config resolved(core::config cfg) {
  if (cfg.threads == 0) cfg.threads = std::max(1u, std::thread::hardware_concurrency());
  return cfg;
}

middleware::api_key_set load_keys(const core::config& cfg) {
  std::vector<std::string> keys = cfg.api_keys;
  if (!cfg.api_keys_file.empty()) {
    std::string err;
    auto from_file = middleware::api_key_set::from_file(cfg.api_keys_file, err);
    if (!err.empty()) throw std::runtime_error("--api-keys-file: " + err);
    // Merge: re-read the file's lines through the same checks.
    std::FILE* f = std::fopen(cfg.api_keys_file.c_str(), "r");
    if (f != nullptr) {
      char line[4200];
      while (std::fgets(line, sizeof line, f)) {
        std::string_view v(line);
        while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ' || v.back() == '\t'))
          v.remove_suffix(1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        if (v.size() >= 3 && static_cast<unsigned char>(v[0]) == 0xEF) v.remove_prefix(3);  // BOM
        if (v.empty() || v.front() == '#') continue;
        keys.emplace_back(v);
      }
      std::fclose(f);
    }
  }
  try {
    return middleware::api_key_set(keys);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("--api-key: ") + e.what());
  }
}

std::unique_ptr<middleware::rate_limiter> make_limiter(const core::config& cfg) {
  if (!cfg.rate_limit_enabled) return nullptr;
  middleware::rate_limit_options o;
  o.limit = cfg.rate_limit;
  o.window = cfg.rate_limit_window;
  o.max_keys = cfg.rate_limit_max_clients;
  o.shards = 64;
  return std::make_unique<middleware::rate_limiter>(o);
}

std::unique_ptr<middleware::jwt_verifier> make_jwt(const core::config& cfg) {
  if (cfg.jwt_secret.empty()) return nullptr;
  middleware::jwt_options o;
  o.secret = cfg.jwt_secret;
  o.leeway = std::chrono::duration_cast<std::chrono::seconds>(cfg.jwt_leeway);
  if (!cfg.jwt_issuer.empty()) o.issuer = cfg.jwt_issuer;
  if (!cfg.jwt_audience.empty()) o.audience = cfg.jwt_audience;
  return std::make_unique<middleware::jwt_verifier>(std::move(o));
}

middleware::access_log_format log_format(const core::config& cfg) {
  middleware::access_log_format f = middleware::access_log_format::text;
  middleware::parse_access_log_format(cfg.access_log, f);
  return f;
}

}  // namespace

shared_state::shared_state(const core::config& cfg, std::FILE* access_log_out)
    : metrics(cfg.threads, middleware::metrics_options{cfg.metrics_max_paths, 256}),
      logs(middleware::log_ring_options{cfg.log_capacity}),
      limiter(make_limiter(cfg)),
      keys(load_keys(cfg)),
      jwt(make_jwt(cfg)),
      access(log_format(cfg), access_log_out) {}

net::chain_factory make_chain_factory(const core::config& cfg, shared_state& state) {
  return [&cfg, &state](net::worker_env& env) -> http::handler_ptr {
    auto& shard = state.metrics.shard(env.index);
    auto r = std::make_unique<router>();
    r->add_exact("/health", admin::make_health_handler());
    r->add_exact("/metrics", admin::make_metrics_handler(state.metrics));
    r->add_exact("/logs", admin::make_logs_handler(state.logs));
    r->add_exact("/logs/clear", admin::make_logs_clear_handler(state.logs));

    auto opts = proxy::options_from_config(cfg);
    opts.stats = state.upstream;
    http::handler_ptr api = proxy::make_proxy_handler(env, std::move(opts));
    for (const auto& rules : cfg.validation) api = middleware::make_validation(rules, std::move(api));
    r->add_prefix("/api/", std::move(api));

    std::vector<http::middleware> layers;
    layers.push_back(middleware::make_request_id(env.index));
    layers.push_back(middleware::make_metrics(shard));
    layers.push_back(middleware::make_logging(state.logs, state.access));
    layers.push_back(middleware::make_request_decompression(cfg.max_body));
    if (state.limiter) layers.push_back(middleware::make_rate_limit(*state.limiter, cfg.rate_limit_key == "api-key", shard));
    layers.push_back(middleware::make_auth(state.keys, state.jwt.get(), shard));
    return http::compose(std::move(layers), std::move(r));
  };
}

instance::instance(core::config cfg, std::FILE* access_log_out) : cfg_(resolved(std::move(cfg))) {
  if (cfg_.backend.empty()) {
    // No backend: an in-process echo service, so /api/ works out of the box.
    demo_ = std::make_unique<proxy::demo_backend>();
    cfg_.backend = demo_->url();
  }
  state_ = std::make_unique<shared_state>(cfg_, access_log_out);
  server_ = std::make_unique<net::server>(cfg_, make_chain_factory(cfg_, *state_));
  auto* srv = server_.get();
  state_->metrics.add_gauge("connections", "Open client connections",
                            [srv] { return srv->live().connections; });
  state_->metrics.add_gauge("requests_in_flight", "Requests being served",
                            [srv] { return srv->live().requests_in_flight; });
  auto* st = state_.get();
  state_->metrics.add_gauge("access_log_dropped", "Access-log lines dropped because output was slow",
                            [st] { return static_cast<std::int64_t>(st->access.dropped()); });
  state_->metrics.add_gauge("rate_limit_clients", "Clients tracked by the rate limiter",
                            [st] { return st->limiter ? static_cast<std::int64_t>(st->limiter->size()) : 0; });
  state_->metrics.add_gauge("log_entries", "Entries held for /logs",
                            [st] { return static_cast<std::int64_t>(st->logs.size()); });
  auto* up = state_->upstream.get();
  state_->metrics.add_gauge("upstream_connections", "Backend connections open (idle or in use)",
                            [up] { return up->live.load(); });
  state_->metrics.add_gauge("upstream_idle_connections", "Backend connections idle in the pools",
                            [up] { return up->idle.load(); });
  state_->metrics.add_gauge("upstream_connections_opened", "Backend connections opened since start",
                            [up] { return static_cast<std::int64_t>(up->opened.load()); });
  state_->metrics.add_gauge("upstream_requests", "Requests forwarded to the backend",
                            [up] { return static_cast<std::int64_t>(up->requests.load()); });
  state_->metrics.add_gauge("upstream_retries", "Requests retried after a stale pooled connection",
                            [up] { return static_cast<std::int64_t>(up->retries.load()); });
}

instance::~instance() {
  stop();
  wait();
}

void instance::start() { server_->start(); }
void instance::stop() noexcept { server_->stop(); }
void instance::wait() {
  server_->wait();
  if (demo_) demo_->stop();
}

int run(const core::config& cfg) {
  core::configure_process_memory();
  // Signals are taken by this thread alone, with sigwait: worker threads
  // inherit the blocked mask and never see them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<instance> gw;
  try {
    gw = std::make_unique<instance>(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gateway: %s\n", e.what());
    return 1;
  }
  gw->start();
  const auto& c = gw->cfg();
  std::fprintf(stderr, "gateway: listening on %s:%u with %u worker threads\n", c.listen.host.c_str(),
               static_cast<unsigned>(gw->port()), gw->server().worker_count());
  std::fprintf(stderr, "gateway: try  curl -s http://%s:%u/health\n", c.listen.host.c_str(),
               static_cast<unsigned>(gw->port()));
  if (gw->demo_backend())
    std::fprintf(stderr, "gateway: no --backend given: /api/ goes to an embedded echo backend at %s\n", c.backend.c_str());
  if (!c.api_keys.empty())
    std::fprintf(stderr, "gateway: and  curl -s -H 'X-API-Key: %s' http://%s:%u/api/hello\n", c.api_keys.front().c_str(),
                 c.listen.host.c_str(), static_cast<unsigned>(gw->port()));
  else if (c.api_keys_file.empty() && c.jwt_secret.empty())
    std::fprintf(stderr, "gateway: no --api-key or --jwt-secret given: /api/ and /logs will answer 401\n");

  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) continue;  // reload comes with the config file
    std::fprintf(stderr, "gateway: signal %d, draining (up to %lld ms)\n", sig,
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(c.drain_timeout).count()));
    break;
  }
  gw->stop();
  gw->wait();
  auto live = gw->server().live();
  std::fprintf(stderr, "gateway: stopped (connections %lld, coroutines %lld, threads %lld)\n",
               static_cast<long long>(live.connections), static_cast<long long>(live.coroutines),
               static_cast<long long>(live.threads));
  return 0;
}

}  // namespace gateway::app
