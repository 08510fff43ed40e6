#include "gateway/app/instance.hpp"

#include <chrono>
#include <future>

namespace gateway::app {

instance::instance(core::config cfg, std::FILE* access_log_out) : instance(std::move(cfg), access_log_out, {}) {}

instance::instance(core::config cfg, std::FILE* access_log_out, pipeline_hook adjust_for_test)
    : cfg_(resolved(std::move(cfg))), adjust_for_test_(std::move(adjust_for_test)) {
  check_startup(cfg_, false);
  if (cfg_.backend.empty()) {
    // No backend: an in-process echo service, so /api/ works out of the box.
    demo_ = std::make_unique<proxy::demo_backend>();
    cfg_.backend = demo_->url();
  }
  state_ = std::make_unique<shared_state>(cfg_, access_log_out);
  settings_ = make_settings(cfg_);
  resolve_backend_names(cfg_, *state_->names);
  state_->set_limiter(settings_->limiter);
  workers_.resize(cfg_.threads, nullptr);
  auto factory = pipeline_factory(settings_);
  std::shared_ptr<net::tls_terminator> tls;
  if (net::tls_terminator::wanted(cfg_)) {
    try {
      tls = std::make_shared<net::tls_terminator>(cfg_);
    } catch (const net::tls_error& e) {
      throw config_error(e.what());
    }
  }
  server_ = std::make_unique<net::server>(
      cfg_,
      [this, &factory](net::worker_env& env) {
        if (env.index < workers_.size()) workers_[env.index] = env.owner;
        return factory(env);
      },
      std::move(tls));
  register_metrics();
}

// Every figure /metrics exports besides the request counts the metrics
// layer keeps: the stat sets (net, proxy) and what only a callback knows.
void instance::register_metrics() {
  auto& m = state_->metrics;
  m.add_stats(server_->stats());
  m.add_stats(std::span<const proxy::upstream_stats>(state_->upstream.get(), 1));
  m.add_stats(std::span<const middleware::rate_limit_store_stats>(&state_->store_health.stats, 1));
  auto* srv = server_.get();
  auto* st = state_.get();
  m.add(core::stat_type::gauge, "body_bytes_buffered", "Request-body bytes buffered now (against --body-budget)",
        [srv] { return srv->live().body_bytes_buffered; });
  m.add(core::stat_type::counter, "access_log_dropped", "Access-log lines dropped because the output was slow",
        [st] { return static_cast<std::int64_t>(st->access.dropped()); });
  m.add(core::stat_type::gauge, "rate_limit_clients", "Clients tracked by the rate limiter", [st] {
    auto l = st->current_limiter();
    return l ? static_cast<std::int64_t>(l->size()) : 0;
  });
  m.add(core::stat_type::gauge, "log_entries", "Entries held for /logs",
        [st] { return static_cast<std::int64_t>(st->logs.size()); });
  m.add(core::stat_type::counter, "config_reloads", "Configuration reloads applied",
        [this] { return static_cast<std::int64_t>(reloads()); });
  auto* names = st->names.get();
  m.add(core::stat_type::gauge, "dns_names", "Backend host names followed (re-resolved on their TTL)",
        [names] { return static_cast<std::int64_t>(names->size()); });
  m.add(core::stat_type::counter, "dns_resolutions", "Backend host name lookups that answered with addresses",
        [names] { return names->resolutions.load(std::memory_order_relaxed); });
  m.add(core::stat_type::counter, "dns_failures",
        "Backend host name re-resolutions that failed or came back empty (the last good addresses stay)",
        [names] { return names->failures.load(std::memory_order_relaxed); });
  m.add(core::stat_type::counter, "dns_changes", "Backend host names whose addresses changed while running",
        [names] { return names->changes.load(std::memory_order_relaxed); });
  auto* members = &st->members;
  m.add_section(
      "upstream_members", [members](std::string& out) { members->render_json(out); },
      [members](std::string& out) { members->render_prometheus(out); });
}

net::chain_factory instance::pipeline_factory(std::shared_ptr<const settings> s) {
  auto make = make_pipeline_factory(std::move(s), *state_);
  if (!adjust_for_test_) return make;
  return [make, adjust = adjust_for_test_](net::worker_env& env) {
    auto p = make(env);
    adjust(*p);
    return p;
  };
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

std::shared_ptr<const settings> instance::current_settings() const {
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
  // What a start would refuse, a reload refuses too.
  try {
    check_startup(next, false);
  } catch (const std::exception& e) {
    message = e.what();
    return false;
  }
  std::vector<std::shared_ptr<net::chain_generation>> pipelines;
  std::shared_ptr<const settings> s;
  // New certificates are read first and installed with the new pipelines:
  // a bad file refuses the whole reload, and the running ones stay.
  std::shared_ptr<const net::tls_context> tls;
  if (auto* t = server_->tls()) {
    try {
      tls = t->prepare(next);
    } catch (const net::tls_error& e) {
      message = e.what();
      return false;
    }
  }
  try {
    s = make_settings(next, same_limiter(settings_->cfg, next) ? settings_->limiter : nullptr);
    resolve_backend_names(next, *state_->names);  // names new to this configuration
    auto factory = pipeline_factory(s);
    for (auto* w : workers_) pipelines.push_back(w->prepare_chain(factory));
  } catch (const std::exception& e) {
    message = e.what();
    return false;
  }
  std::vector<std::future<void>> swapped;
  for (std::size_t i = 0; i < pipelines.size(); ++i) {
    auto done = std::make_shared<std::promise<void>>();
    swapped.push_back(done->get_future());
    workers_[i]->install_chain(std::move(pipelines[i]), [done] { done->set_value(); });
  }
  // Workers swap within one turn of their event loop; a stopped worker
  // never does, and nothing waits for it past the deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (auto& f : swapped) f.wait_until(deadline);
  if (tls) server_->tls()->install(tls);
  state_->set_limiter(s->limiter);
  settings_ = std::move(s);
  state_->members.prune();  // members of routes the old pipelines had (those still running go next time)
  ++reloads_;
  message = std::to_string(settings_->cfg.routes.size() + 1) + " proxied routes" + describe_routes(settings_->cfg);
  if (settings_->jwt && settings_->jwt->options().jwks)
    message += "\n  --jwt-jwks: " + settings_->jwt->options().jwks->describe();
  if (tls) message += "\n  TLS certificates: " + tls->describe();
  return true;
}

bool instance::reload_from_sources(std::string& message) {
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

}  // namespace gateway::app
