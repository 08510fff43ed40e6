#include "gateway/app/app.hpp"

#include <unistd.h>

#include <algorithm>
#include <asio/ip/address.hpp>
#include <condition_variable>
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
#include "gateway/proxy/backend_address.hpp"
#include "gateway/proxy/concurrency_limit.hpp"
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

std::unique_ptr<middleware::jwt_verifier> make_jwt(const core::config& cfg) {
  if (cfg.jwt_secret.empty()) return nullptr;
  middleware::jwt_options o;
  o.secret = cfg.jwt_secret;
  o.leeway = std::chrono::duration_cast<std::chrono::seconds>(cfg.jwt_leeway);
  if (!cfg.jwt_issuer.empty()) o.issuer = cfg.jwt_issuer;
  if (!cfg.jwt_audience.empty()) o.audience = cfg.jwt_audience;
  return std::make_unique<middleware::jwt_verifier>(std::move(o));
}

middleware::access_log_format log_format(const core::config& cfg, std::FILE* out) {
  if (cfg.access_log == "auto") {
    // A person watching a terminal gets one coloured line per request; a
    // pipe or file gets the parseable text format.
    const bool tty = out != nullptr && ::isatty(::fileno(out)) == 1;
    return tty ? middleware::access_log_format::pretty : middleware::access_log_format::text;
  }
  middleware::access_log_format f = middleware::access_log_format::text;
  middleware::parse_access_log_format(cfg.access_log, f);
  return f;
}

bool same_limits(const core::config& a, const core::config& b) {
  return a.rate_limit_enabled == b.rate_limit_enabled && a.rate_limit == b.rate_limit &&
         a.rate_limit_window == b.rate_limit_window && a.rate_limit_max_clients == b.rate_limit_max_clients;
}

// "/app/" -> "/app" (what the proxy strips); "/" strips nothing.
std::string strip_of(const std::string& prefix) { return prefix.size() > 1 ? prefix.substr(0, prefix.size() - 1) : ""; }

// One proxied route as the chain factory builds it.
struct proxied {
  std::string prefix;
  std::string backend;
  std::string strip;
  bool auth = false;
  bool rate_limit = false;
  std::optional<std::chrono::nanoseconds> timeout, connect_timeout;
  std::vector<const core::validation_rules*> rules;
};

std::vector<proxied> proxied_routes(const core::config& cfg) {
  std::vector<proxied> out;
  out.push_back({"/api/", cfg.backend, "/api", true, true, std::nullopt, std::nullopt, {}});
  for (const auto& r : cfg.routes) {
    proxied p{r.prefix, r.backend, r.strip_prefix ? strip_of(r.prefix) : "", r.auth, r.rate_limit,
              r.timeout, r.connect_timeout, {}};
    for (const auto& v : r.validation) p.rules.push_back(&v);
    out.push_back(std::move(p));
  }
  // --validate ROUTE:...: the route whose prefix is the longest match for
  // ROUTE (the seed's rules were for /api/ paths, which stay there).
  for (const auto& v : cfg.validation) {
    proxied* best = &out.front();
    std::size_t best_len = 0;
    for (auto& p : out) {
      std::string_view pre = p.prefix;
      const bool under = std::string_view(v.route).substr(0, pre.size()) == pre || v.route == pre.substr(0, pre.size() - 1);
      if (under && pre.size() > best_len) {
        best = &p;
        best_len = pre.size();
      }
    }
    best->rules.push_back(&v);
  }
  return out;
}

struct countdown {
  std::mutex m;
  std::condition_variable cv;
  std::size_t left;
  explicit countdown(std::size_t n) : left(n) {}
  void arrive() {
    std::lock_guard lock(m);
    if (left > 0 && --left == 0) cv.notify_all();
  }
  bool wait_for(std::chrono::milliseconds d) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, d, [this] { return left == 0; });
  }
};

std::string describe_routes(const core::config& cfg) {
  std::string s;
  for (const auto& r : cfg.routes) {
    s += "\n  " + r.prefix + " -> " + r.backend + (r.strip_prefix ? " (prefix removed" : " (prefix kept") +
         (r.auth ? ", auth" : "") + (r.rate_limit ? ", rate limit" : "") + ")";
  }
  return s;
}

}  // namespace

shared_state::shared_state(const core::config& cfg, std::FILE* access_log_out)
    : metrics(cfg.threads, middleware::metrics_options{cfg.metrics_max_paths, 256}),
      logs(middleware::log_ring_options{cfg.log_capacity}),
      access(log_format(cfg, access_log_out), access_log_out) {}

std::shared_ptr<middleware::rate_limiter> shared_state::current_limiter() const {
  std::lock_guard lock(mu);
  return limiter;
}

std::shared_ptr<const chain_settings> make_settings(core::config cfg, std::shared_ptr<middleware::rate_limiter> reuse) {
  auto s = std::make_shared<chain_settings>();
  s->cfg = std::move(cfg);
  s->keys = load_keys(s->cfg);
  s->jwt = make_jwt(s->cfg);
  if (s->cfg.rate_limit_enabled) {
    if (reuse) {
      s->limiter = std::move(reuse);
    } else {
      middleware::rate_limit_options o;
      o.limit = s->cfg.rate_limit;
      o.window = s->cfg.rate_limit_window;
      o.max_keys = s->cfg.rate_limit_max_clients;
      o.shards = 64;
      s->limiter = std::make_shared<middleware::rate_limiter>(o);
    }
  }
  return s;
}

net::chain_factory make_chain_factory(std::shared_ptr<const chain_settings> settings, shared_state& state) {
  return [settings, &state](net::worker_env& env) -> http::handler_ptr {
    env.owned = settings;  // validation rules and keys are referred to, not copied
    const chain_settings& s = *settings;
    const core::config& cfg = s.cfg;
    auto& shard = state.metrics.shard(env.index);
    // A route's own chain: rate limit, then auth, then the route.
    auto guarded = [&](http::handler_ptr h, bool auth, bool rate_limit) {
      std::vector<http::middleware> layers;
      if (rate_limit && s.limiter)
        layers.push_back(middleware::make_rate_limit(*s.limiter, cfg.rate_limit_key == "api-key", shard, cfg.rate_limit_exempt));
      if (auth) layers.push_back(middleware::make_auth(s.keys, s.jwt.get(), shard));
      return http::compose(std::move(layers), std::move(h));
    };

    auto r = std::make_unique<router>();
    r->add_exact("/health", guarded(admin::make_health_handler(), false, true));
    r->add_exact("/metrics", guarded(admin::make_metrics_handler(state.metrics), false, true));
    r->add_exact("/logs", guarded(admin::make_logs_handler(state.logs), true, true));
    r->add_exact("/logs/clear", guarded(admin::make_logs_clear_handler(state.logs), true, true));
    for (const auto& p : proxied_routes(cfg)) {
      auto opts = proxy::options_from_config(cfg);
      opts.backend_url = p.backend;
      opts.strip_prefix = p.strip;
      if (p.timeout) opts.response_timeout = *p.timeout;
      if (p.connect_timeout) opts.connect_timeout = *p.connect_timeout;
      opts.stats = state.upstream;
      http::handler_ptr h = proxy::make_proxy_handler(env, std::move(opts));
      // Each worker takes its share of the backend's concurrency cap.
      proxy::concurrency_limit_options lim;
      lim.max_in_flight = std::max<std::uint32_t>(1, cfg.upstream_max_concurrent / std::max(1u, cfg.threads));
      lim.max_waiters = lim.max_in_flight;
      lim.queue_timeout = cfg.upstream_queue_timeout;
      h = proxy::make_concurrency_limit(std::move(h), lim, &state.upstream_busy);
      for (const auto* rules : p.rules) h = middleware::make_validation(*rules, std::move(h));
      r->add_prefix(p.prefix, guarded(std::move(h), p.auth, p.rate_limit));
    }
    // Unknown paths get the router's own 404, as the seed's mux answered
    // them before any middleware (no 401, no rate-limit budget spent).

    std::vector<http::middleware> layers;
    layers.push_back(middleware::make_request_id(env.index));
    layers.push_back(middleware::make_metrics(shard));
    layers.push_back(middleware::make_logging(state.logs, state.access));
    layers.push_back(middleware::make_request_decompression(cfg.max_body, cfg.compress_responses));
    return http::compose(std::move(layers), std::move(r));
  };
}

net::chain_factory make_chain_factory(const core::config& cfg, shared_state& state) {
  auto settings = make_settings(resolved(cfg), state.current_limiter());
  {
    std::lock_guard lock(state.mu);
    state.limiter = settings->limiter;
  }
  return make_chain_factory(std::move(settings), state);
}

std::string restart_only_changes(const core::config& a, const core::config& b) {
  std::string out;
  auto note = [&out](bool differs, const char* key) {
    if (!differs) return;
    if (!out.empty()) out += ", ";
    out += key;
  };
  note(a.listen.host != b.listen.host || a.listen.port != b.listen.port, "listen");
  note(a.threads != b.threads, "threads");
  note(a.max_body != b.max_body, "max_body");
  note(a.max_head != b.max_head, "max_head");
  note(a.max_target != b.max_target, "max_target");
  note(a.max_headers != b.max_headers, "max_headers");
  note(a.max_connections != b.max_connections, "max_connections");
  note(a.body_budget != b.body_budget, "body_budget");
  note(a.header_timeout != b.header_timeout, "header_timeout");
  note(a.body_timeout != b.body_timeout, "body_timeout");
  note(a.idle_timeout != b.idle_timeout, "idle_timeout");
  note(a.write_timeout != b.write_timeout, "write_timeout");
  note(a.drain_timeout != b.drain_timeout, "drain_timeout");
  note(a.tunnel_idle_timeout != b.tunnel_idle_timeout, "tunnel_idle_timeout");
  note(a.access_log != b.access_log, "access_log");
  note(a.log_capacity != b.log_capacity, "log_capacity");
  note(a.metrics_max_paths != b.metrics_max_paths, "metrics_max_paths");
  return out;
}

instance::instance(core::config cfg, std::FILE* access_log_out) : cfg_(resolved(std::move(cfg))) {
  if (cfg_.backend.empty()) {
    // No backend: an in-process echo service, so /api/ works out of the box.
    demo_ = std::make_unique<proxy::demo_backend>();
    cfg_.backend = demo_->url();
  }
  state_ = std::make_unique<shared_state>(cfg_, access_log_out);
  settings_ = make_settings(cfg_);
  state_->limiter = settings_->limiter;
  workers_.resize(cfg_.threads, nullptr);
  auto factory = make_chain_factory(settings_, *state_);
  server_ = std::make_unique<net::server>(cfg_, [this, &factory](net::worker_env& env) {
    if (env.index < workers_.size()) workers_[env.index] = env.owner;
    return factory(env);
  });
  auto* srv = server_.get();
  state_->metrics.add_gauge("connections", "Open client connections",
                            [srv] { return srv->live().connections; });
  state_->metrics.add_gauge("requests_in_flight", "Requests being served",
                            [srv] { return srv->live().requests_in_flight; });
  auto* st = state_.get();
  state_->metrics.add_gauge("access_log_dropped", "Access-log lines dropped because output was slow",
                            [st] { return static_cast<std::int64_t>(st->access.dropped()); });
  state_->metrics.add_gauge("rate_limit_clients", "Clients tracked by the rate limiter", [st] {
    auto l = st->current_limiter();
    return l ? static_cast<std::int64_t>(l->size()) : 0;
  });
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
  state_->metrics.add_gauge("upstream_busy_rejected", "503 answers: requests over --upstream-max-concurrent",
                            [st] { return static_cast<std::int64_t>(st->upstream_busy.load()); });
  state_->metrics.add_gauge("rejected_connections", "Connections refused with 503 over --max-connections",
                            [srv] { return static_cast<std::int64_t>(srv->live().rejected_connections); });
  state_->metrics.add_gauge("rejected_bodies", "Requests refused with 503 over --body-budget",
                            [srv] { return static_cast<std::int64_t>(srv->live().rejected_bodies); });
  state_->metrics.add_gauge("body_bytes_buffered", "Request-body bytes buffered now (against --body-budget)",
                            [srv] { return static_cast<std::int64_t>(srv->live().body_bytes_buffered); });
  state_->metrics.add_gauge("client_timeouts", "Client connections timed out (408 or closed)",
                            [srv] { return static_cast<std::int64_t>(srv->live().timeouts); });
  state_->metrics.add_gauge("bad_requests", "Malformed requests refused (400 and kin)",
                            [srv] { return static_cast<std::int64_t>(srv->live().bad_requests); });
  state_->metrics.add_gauge("accept_errors", "Failed accepts (e.g. out of file descriptors), each followed by a back-off",
                            [srv] { return static_cast<std::int64_t>(srv->live().accept_errors); });
  auto* self = this;
  state_->metrics.add_gauge("config_reloads", "Configuration reloads applied",
                            [self] { return static_cast<std::int64_t>(self->reloads()); });
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

std::uint64_t instance::reloads() const noexcept {
  std::lock_guard lock(reload_mu_);
  return reloads_;
}

std::shared_ptr<const chain_settings> instance::settings() const {
  std::lock_guard lock(reload_mu_);
  return settings_;
}

bool instance::reload(core::config next, std::string& message) {
  std::lock_guard lock(reload_mu_);
  next = resolved(std::move(next));
  if (next.backend.empty()) {
    if (!demo_) demo_ = std::make_unique<proxy::demo_backend>();
    next.backend = demo_->url();
  }
  if (std::string diff = restart_only_changes(cfg_, next); !diff.empty()) {
    message = "changing " + diff + " needs a restart";
    return false;
  }
  std::vector<std::shared_ptr<net::chain_generation>> chains;
  std::shared_ptr<const chain_settings> s;
  try {
    s = make_settings(next, same_limits(settings_->cfg, next) ? settings_->limiter : nullptr);
    auto factory = make_chain_factory(s, *state_);
    for (auto* w : workers_) chains.push_back(w->prepare_chain(factory));
  } catch (const std::exception& e) {
    message = e.what();
    return false;
  }
  auto done = std::make_shared<countdown>(chains.size());
  for (std::size_t i = 0; i < chains.size(); ++i)
    workers_[i]->install_chain(std::move(chains[i]), [done] { done->arrive(); });
  // Workers swap within one turn of their event loop; a stopped worker
  // never does, and nothing waits for it then.
  done->wait_for(std::chrono::seconds(5));
  {
    std::lock_guard state_lock(state_->mu);
    state_->limiter = s->limiter;
  }
  settings_ = std::move(s);
  ++reloads_;
  message = std::to_string(settings_->cfg.routes.size() + 1) + " proxied routes" + describe_routes(settings_->cfg);
  return true;
}

bool instance::reload_from_sources(std::string& message) {
  if (cfg_.config_file.empty()) {
    message = "no --config file was given, so there is nothing to re-read";
    return false;
  }
  std::vector<const char*> argv{"gateway"};
  for (const auto& a : cfg_.command_line) argv.push_back(a.c_str());
  core::config next;
  auto o = core::parse_args(static_cast<int>(argv.size()), argv.data(), next);
  if (o.what != core::parse_outcome::action::run) {
    message = o.message;
    return false;
  }
  return reload(std::move(next), message);
}

bool check_config(const core::config& given, std::string& message) {
  if (!given.check_error.empty()) {
    message = given.check_error;
    return false;
  }
  try {
    core::config cfg = resolved(given);
    std::error_code ec;
    asio::ip::make_address(cfg.listen.host, ec);
    if (ec) throw std::runtime_error("--listen: '" + cfg.listen.host + "' is not a numeric IP address");
    auto s = make_settings(cfg);
    if (!cfg.backend.empty()) proxy::parse_backend_url(cfg.backend);
    for (const auto& r : cfg.routes) {
      try {
        proxy::parse_backend_url(r.backend);
      } catch (const std::exception& e) {
        throw std::runtime_error("route " + r.prefix + ": " + e.what());
      }
    }
    message = "configuration OK" + std::string(cfg.config_file.empty() ? "" : " (" + cfg.config_file + ")") +
              ": listen " + cfg.listen.host + ":" + std::to_string(cfg.listen.port) + ", /api/ -> " +
              (cfg.backend.empty() ? std::string("embedded echo backend") : cfg.backend) + describe_routes(cfg);
    return true;
  } catch (const std::exception& e) {
    message = e.what();
    return false;
  }
}

int run(const core::config& cfg) {
  if (cfg.check_config) {
    std::string message;
    const bool ok = check_config(cfg, message);
    std::fprintf(ok ? stdout : stderr, "gateway: %s\n", message.c_str());
    return ok ? 0 : 1;
  }
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
  if (!c.routes.empty()) std::fprintf(stderr, "gateway: routes:%s\n", describe_routes(c).c_str());
  if (!c.api_keys.empty())
    std::fprintf(stderr, "gateway: and  curl -s -H 'X-API-Key: %s' http://%s:%u/api/hello\n", c.api_keys.front().c_str(),
                 c.listen.host.c_str(), static_cast<unsigned>(gw->port()));
  else if (c.api_keys_file.empty() && c.jwt_secret.empty())
    std::fprintf(stderr, "gateway: no --api-key or --jwt-secret given: /api/ and /logs will answer 401\n");

  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      std::string message;
      if (gw->reload_from_sources(message))
        std::fprintf(stderr, "gateway: SIGHUP: configuration reloaded: %s\n", message.c_str());
      else
        std::fprintf(stderr, "gateway: SIGHUP: reload REFUSED, the previous configuration stays: %s\n",
                     message.c_str());
      continue;
    }
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
