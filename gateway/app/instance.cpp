#include "gateway/app/instance.hpp"

#include <chrono>
#include <future>

namespace gateway::app {

instance::instance(core::config cfg, std::FILE* access_log_out) : cfg_(resolved(std::move(cfg))) {
  if (cfg_.backend.empty()) {
    // No backend: an in-process echo service, so /api/ works out of the box.
    demo_ = std::make_unique<proxy::demo_backend>();
    cfg_.backend = demo_->url();
  }
  state_ = std::make_unique<shared_state>(cfg_, access_log_out);
  settings_ = make_settings(cfg_);
  state_->set_limiter(settings_->limiter);
  workers_.resize(cfg_.threads, nullptr);
  auto factory = make_pipeline_factory(settings_, *state_);
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
  std::vector<std::shared_ptr<net::chain_generation>> pipelines;
  std::shared_ptr<const settings> s;
  try {
    s = make_settings(next, same_limiter(settings_->cfg, next) ? settings_->limiter : nullptr);
    auto factory = make_pipeline_factory(s, *state_);
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
  state_->set_limiter(s->limiter);
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

}  // namespace gateway::app
