#include "gateway/app/pipeline.hpp"

#include <unistd.h>

#include <asio/post.hpp>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gateway/admin/admin.hpp"
#include "gateway/admin/health.hpp"
#include "gateway/app/router.hpp"
#include "gateway/json/writer.hpp"
#include "gateway/middleware/compression.hpp"
#include "gateway/middleware/cors.hpp"
#include "gateway/middleware/header_rules.hpp"
#include "gateway/middleware/middleware.hpp"
#include "gateway/proxy/concurrency_limit.hpp"
#include "gateway/proxy/proxy_handler.hpp"

namespace gateway::app {

namespace {

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

// "/app/" -> "/app" (what the proxy strips); "/" strips nothing.
std::string strip_of(const std::string& prefix) { return prefix.size() > 1 ? prefix.substr(0, prefix.size() - 1) : ""; }

// One proxied route as the configuration describes it.
struct proxied_route {
  std::string prefix;
  std::string backend;  // one URL or a group
  std::string strip;
  bool auth = false;
  bool rate_limit = false;
  std::optional<std::chrono::nanoseconds> timeout, connect_timeout;
  std::vector<const core::validation_rules*> rules;
  bool upstream_host = false;
  const route_settings* extra = nullptr;  // header rules, CORS (null for /api/)
  std::optional<std::string> balance;     // else --balance
};

// /api/ (the seed's route) and every --route, with the --validate rules
// given to the route whose prefix is the longest match for their path.
std::vector<proxied_route> proxied_routes(const settings& s) {
  const core::config& cfg = s.cfg;
  std::vector<proxied_route> out;
  out.push_back({std::string(api_route_prefix),
                 cfg.backend,
                 "/api",
                 true,
                 true,
                 std::nullopt,
                 std::nullopt,
                 {},
                 false,
                 nullptr,
                 std::nullopt});
  for (std::size_t i = 0; i < cfg.routes.size(); ++i) {
    const auto& r = cfg.routes[i];
    proxied_route p{r.prefix, r.backend, r.strip_prefix ? strip_of(r.prefix) : "", r.auth, r.rate_limit,
                    r.timeout, r.connect_timeout, {}, r.upstream_host, &s.routes[i], r.balance};
    for (const auto& v : r.validation) p.rules.push_back(&v);
    out.push_back(std::move(p));
  }
  for (const auto& v : cfg.validation) {
    proxied_route* best = &out.front();
    std::size_t best_len = 0;
    for (auto& p : out) {
      if (route_prefix_covers(p.prefix, v.route) && p.prefix.size() > best_len) {
        best = &p;
        best_len = p.prefix.size();
      }
    }
    best->rules.push_back(&v);
  }
  return out;
}

// Builds one worker's pipeline.
class pipeline_builder {
 public:
  pipeline_builder(const settings& s, shared_state& state, net::worker_env& env)
      : s_(s), cfg_(s.cfg), state_(state), env_(env), shard_(state.metrics.shard(env.index)) {}

  std::unique_ptr<http::pipeline> build() {
    if (s_.limiter && s_.store) {
      store_ = middleware::rate_limit_store::make(*env_.io, *s_.store, state_.store_health, env_.owner);
      env_.on_drain.push_back([w = std::weak_ptr<middleware::rate_limit_store>(store_)] {
        if (auto st = w.lock()) st->drain();
      });
    }
    if (env_.index == 0) follow_names();
    auto r = std::make_unique<router>();
    r->add_exact("/health", route(policy{.rate_limit = true}, admin::make_health_page()));
    r->add_exact("/metrics", route(policy{.rate_limit = true}, admin::make_metrics_page(state_.metrics)));
    r->add_exact("/logs", route(policy{.rate_limit = true, .auth = true}, admin::make_logs_page(state_.logs, state_.log_readers)));
    r->add_exact("/logs/clear",
                 route(policy{.rate_limit = true, .auth = true}, admin::make_logs_clear_page(state_.logs)));
    for (const auto& p : proxied_routes(s_)) r->add_prefix(p.prefix, proxy_route(p));
    // Any other path keeps the router's own 404, answered before any route
    // policy: no auth, no rate-limit budget spent.

    http::layer_list outer;
    if (!cfg_.trusted_proxies.empty()) outer.push_back(middleware::make_client_address(cfg_.trusted_proxies));
    outer.push_back(middleware::make_request_id(env_.index));
    outer.push_back(middleware::make_metrics(shard_));
    outer.push_back(middleware::make_logging(state_.logs, state_.access));
    if (cfg_.compress_responses) outer.push_back(middleware::make_response_compression());
    return std::make_unique<http::pipeline>(std::move(outer), std::move(r));
  }

 private:
  struct policy {
    bool rate_limit = false;
    bool auth = false;
    const std::vector<const core::validation_rules*>* rules = nullptr;
    const route_settings* extra = nullptr;  // CORS and header rules
    bool proxied = false;
  };

  // A route: its policy layers in the order of the lifecycle above, then
  // the layers that answer. A route without CORS or header rules has no
  // layer for them.
  http::layer_list route(const policy& p, http::layer_ptr endpoint, http::layer_ptr before_endpoint = nullptr) {
    http::layer_list layers;
    if (p.extra != nullptr && p.extra->cors) layers.push_back(middleware::make_cors(*p.extra->cors, shard_));
    if (p.rate_limit && s_.limiter) {
      const middleware::api_key_set* by_key = cfg_.rate_limit_key == "api-key" ? &s_.keys : nullptr;
      layers.push_back(middleware::make_rate_limit(*s_.limiter, by_key, shard_, cfg_.rate_limit_exempt, store_,
                                                   cfg_.rate_limit_store_failure != "closed"));
    }
    if (p.auth) layers.push_back(middleware::make_auth(s_.keys, s_.jwt.get(), shard_));
    if (!p.auth && p.proxied && s_.jwt && !s_.jwt->options().claim_headers.empty())
      layers.push_back(middleware::make_claim_header_strip(*s_.jwt));
    if (p.proxied)
      layers.push_back(middleware::make_request_decoding(cfg_.max_body));
    if (p.rules != nullptr && !p.rules->empty()) layers.push_back(middleware::make_validation(*p.rules));
    if (p.extra != nullptr && !p.extra->headers.empty())
      layers.push_back(middleware::make_header_rules(p.extra->headers));
    if (before_endpoint) layers.push_back(std::move(before_endpoint));
    layers.push_back(std::move(endpoint));
    return layers;
  }

  http::layer_list proxy_route(const proxied_route& p) {
    auto opts = proxy::options_from_config(cfg_);
    opts.backend_url = p.backend;
    opts.strip_prefix = p.strip;
    opts.upstream_host = p.upstream_host;
    if (p.timeout) opts.response_timeout = *p.timeout;
    if (p.connect_timeout) opts.connect_timeout = *p.connect_timeout;
    if (p.balance)
      opts.balance = *p.balance == "least_request" ? proxy::balance_kind::least_request : proxy::balance_kind::round_robin;
    opts.stats = state_.upstream;
    opts.tls = s_.upstream_tls;
    std::vector<core::backend_member> members;
    if (std::string err; !core::parse_backend_list(p.backend, members, err))
      throw std::invalid_argument("route " + p.prefix + ": " + err);
    opts.names = state_.names;
    opts.member_states = [&registry = state_.members, prefix = p.prefix](const std::vector<core::backend_member>& list) {
      return registry.states(prefix, list);
    };
    // Each worker takes its share of the backend's concurrency cap.
    proxy::concurrency_limit_options lim;
    lim.max_in_flight = std::max<std::uint32_t>(1, cfg_.upstream_max_concurrent / std::max(1u, cfg_.threads));
    lim.max_waiters = lim.max_in_flight;
    lim.queue_timeout = cfg_.upstream_queue_timeout;
    return route(policy{.rate_limit = p.rate_limit, .auth = p.auth, .rules = &p.rules, .extra = p.extra, .proxied = true},
                 proxy::make_proxy(env_, std::move(opts)),
                 proxy::make_concurrency_limit(lim, &state_.upstream->busy_rejected));
  }

  // Worker 0 re-resolves the backends' host names on their TTL for every
  // worker (proxy/name_resolver.hpp); the refresher lives as long as this
  // pipeline, and the next one's takes over the schedule kept in the table.
  void follow_names() {
    auto hosts = backend_host_names(cfg_);
    if (hosts.empty()) return;
    auto refresher = proxy::name_refresher::make(*env_.io, state_.names, std::move(hosts), dns_options_of(cfg_));
    asio::post(*env_.io, [w = std::weak_ptr(refresher)] {
      if (auto r = w.lock()) r->start();
    });
    // Stopped when the pipeline drains, or, dropped without draining (a
    // reload that lost its worker), when the pipeline goes.
    struct stop_on_destroy {
      stop_on_destroy(std::shared_ptr<proxy::name_refresher> refresher, asio::io_context& context)
          : r(std::move(refresher)), io(context) {}
      stop_on_destroy(const stop_on_destroy&) = delete;
      stop_on_destroy& operator=(const stop_on_destroy&) = delete;
      ~stop_on_destroy() {
        asio::post(io, [p = std::move(r)] { p->stop(); });
      }
      std::shared_ptr<proxy::name_refresher> r;
      asio::io_context& io;
    };
    auto holder = std::make_shared<stop_on_destroy>(std::move(refresher), *env_.io);
    env_.on_drain.push_back([holder] { holder->r->stop(); });
  }

  const settings& s_;
  const core::config& cfg_;
  shared_state& state_;
  net::worker_env& env_;
  middleware::metrics_shard& shard_;
  std::shared_ptr<middleware::rate_limit_store> store_;  // null without --rate-limit-store
};

}  // namespace

std::vector<std::shared_ptr<proxy::member_state>> member_registry::states(
    std::string_view route, const std::vector<core::backend_member>& members) {
  std::lock_guard lock(mu_);
  // Members no pipeline holds any more (a reload or a name's address
  // change removed them) make room first.
  std::erase_if(members_, [](const auto& m) { return m.use_count() == 1; });
  std::vector<std::shared_ptr<proxy::member_state>> out;
  for (const auto& m : members) {
    std::shared_ptr<proxy::member_state> found;
    for (const auto& e : members_)
      if (e->route() == route && e->url() == m.url) found = e;
    if (!found) {
      if (members_.size() >= max_entries)
        throw std::length_error("more than " + std::to_string(max_entries) +
                                " backend group members held by the running and the incoming configuration "
                                "together (connections still on an older configuration hold its members)");
      found = std::make_shared<proxy::member_state>(std::string(route), m.url, m.weight);
      members_.push_back(found);
    }
    found->set_weight(m.weight);
    out.push_back(std::move(found));
  }
  return out;
}

void member_registry::prune() {
  std::lock_guard lock(mu_);
  std::erase_if(members_, [](const auto& m) { return m.use_count() == 1; });
}

std::vector<std::shared_ptr<proxy::member_state>> member_registry::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<proxy::member_state>> out;
  for (const auto& m : members_)
    if (m.use_count() > 1) out.push_back(m);  // held by a pipeline: not a member that left
  return out;
}

void member_registry::render_json(std::string& out) const {
  const auto list = all();
  const auto now = std::chrono::steady_clock::now();
  out += '[';
  bool first = true;
  for (const auto& m : list) {
    if (!first) out += ',';
    first = false;
    const auto answered = m->answered.load(std::memory_order_relaxed);
    out += "{\"route\":";
    json::append_string(out, m->route());
    out += ",\"member\":";
    json::append_string(out, m->url());
    out += ",\"weight\":";
    json::append_number(out, static_cast<std::uint64_t>(m->weight()));
    out += ",\"requests\":";
    json::append_number(out, m->requests.load(std::memory_order_relaxed));
    out += ",\"errors\":";
    json::append_number(out, m->errors.load(std::memory_order_relaxed));
    out += ",\"latency_ms_avg\":";
    json::append_number(out, answered == 0 ? 0.0 : static_cast<double>(m->latency_ns.load(std::memory_order_relaxed)) /
                                                         static_cast<double>(answered) / 1e6);
    out += ",\"healthy\":";
    out += m->available(now) ? "true" : "false";
    out += ",\"ejected\":";
    out += m->ejected(now) ? "true" : "false";
    out += ",\"down\":";
    out += m->down() ? "true" : "false";
    out += ",\"ejections\":";
    json::append_number(out, m->ejections.load(std::memory_order_relaxed));
    out += ",\"checks_failed\":";
    json::append_number(out, m->checks_failed.load(std::memory_order_relaxed));
    out += '}';
  }
  out += ']';
}

void member_registry::render_prometheus(std::string& out) const {
  const auto list = all();
  if (list.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  // `type` empty: more samples of the family just described (a summary's
  // _count after its _sum).
  auto family = [&](std::string_view name, std::string_view type, std::string_view help, auto value,
                    std::string_view suffix = {}) {
    if (!type.empty()) {
      out += "# HELP ";
      out += name;
      out += ' ';
      out += help;
      out += "\n# TYPE ";
      out += name;
      out += ' ';
      out += type;
      out += '\n';
    }
    for (const auto& m : list) {
      out += name;
      out += suffix;
      out += "{route=\"";
      middleware::append_prometheus_label_value(out, m->route());
      out += "\",member=\"";
      middleware::append_prometheus_label_value(out, m->url());
      out += "\"} ";
      value(*m);
      out += '\n';
    }
  };
  auto number = [&](std::int64_t v) { json::append_number(out, v); };
  family("gateway_upstream_member_requests_total", "counter", "Exchanges with a group member (retries included).",
         [&](const proxy::member_state& m) { number(m.requests.load(std::memory_order_relaxed)); });
  family("gateway_upstream_member_errors_total", "counter",
         "Exchanges with a group member that failed (connect, reset, timeout, broken answer) or got a 5xx.",
         [&](const proxy::member_state& m) { number(m.errors.load(std::memory_order_relaxed)); });
  // A summary without quantiles: _sum and _count per member.
  family("gateway_upstream_member_latency_seconds", "summary",
         "Time from sending a request to a group member to its response head.",
         [&](const proxy::member_state& m) {
           json::append_number(out, static_cast<double>(m.latency_ns.load(std::memory_order_relaxed)) / 1e9, 9);
         }, "_sum");
  family("gateway_upstream_member_latency_seconds", "", "",
         [&](const proxy::member_state& m) { number(m.answered.load(std::memory_order_relaxed)); }, "_count");
  family("gateway_upstream_member_healthy", "gauge",
         "1 while a group member takes traffic (not ejected, not marked down by health checks).",
         [&](const proxy::member_state& m) { number(m.available(now) ? 1 : 0); });
  family("gateway_upstream_member_ejections_total", "counter", "Times a group member was ejected (passive health).",
         [&](const proxy::member_state& m) { number(m.ejections.load(std::memory_order_relaxed)); });
  family("gateway_upstream_member_checks_failed_total", "counter", "Active health checks of a group member that failed.",
         [&](const proxy::member_state& m) { number(m.checks_failed.load(std::memory_order_relaxed)); });
}

shared_state::shared_state(const core::config& cfg, std::FILE* access_log_out)
    : metrics(cfg.threads, middleware::metrics_options{cfg.metrics_max_paths, 256}),
      logs(middleware::log_ring_options{cfg.log_capacity}),
      access(log_format(cfg, access_log_out), access_log_out) {}

void shared_state::set_limiter(std::shared_ptr<middleware::rate_limiter> l) {
  std::lock_guard lock(mu_);
  limiter_ = std::move(l);
}

std::shared_ptr<middleware::rate_limiter> shared_state::current_limiter() const {
  std::lock_guard lock(mu_);
  return limiter_;
}

net::chain_factory make_pipeline_factory(std::shared_ptr<const settings> s, shared_state& state) {
  return [s, &state](net::worker_env& env) -> std::unique_ptr<http::pipeline> {
    env.owned = s;  // the layers refer to the settings' keys, rules and limiter
    return pipeline_builder(*s, state, env).build();
  };
}

}  // namespace gateway::app
