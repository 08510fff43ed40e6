#include "gateway/net/server.hpp"

#include <asio/ip/address.hpp>
#include <condition_variable>
#include <system_error>

#include "gateway/core/memory.hpp"

namespace gateway::net {

server::server(const core::config& cfg, const chain_factory& make_chain, std::shared_ptr<tls_terminator> tls)
    : cfg_(cfg), tls_(std::move(tls)) {
  unsigned n = cfg_.threads ? cfg_.threads : std::max(1u, std::thread::hardware_concurrency());
  cfg_.threads = n;
  shards_ = std::make_unique<core::live_shard[]>(n);
  budget_ = std::make_unique<core::byte_budget>(cfg_.body_budget);
  const std::size_t per_worker = static_cast<std::size_t>((cfg_.max_connections + n - 1) / n);
  std::error_code ec;
  auto address = asio::ip::make_address(cfg_.listen.host, ec);
  if (ec) {
    throw std::system_error(ec, "--listen: '" + cfg_.listen.host + "' is not a numeric IP address");
  }
  asio::ip::tcp::endpoint ep(address, cfg_.listen.port);
  for (unsigned i = 0; i < n; ++i) {
    auto w = std::make_unique<worker>(i, cfg_, shards_[i], *budget_, per_worker);
    w->set_tls(tls_.get());
    try {
      using sharing = worker::port_sharing;
      w->open_listener(ep, n == 1 ? sharing::none : i == 0 ? sharing::first_of_group : sharing::member);
    } catch (const std::system_error& e) {
      throw std::system_error(e.code(),
                              "--listen " + cfg_.listen.host + ":" + std::to_string(ep.port()) + ": cannot listen");
    }
    if (i == 0) {
      port_ = w->local_port();
      ep.port(port_);  // port 0: the others share the port the first one got
    }
    w->build_chain(make_chain);
    workers_.push_back(std::move(w));
  }
  if (n > 1) {
    steering_ = std::make_unique<accept_steering>(workers_.front()->listener_fd(), stats());
    for (auto& w : workers_) w->set_steering(steering_.get(), workers_);
  }
  if (cfg_.redirect_http) {
    asio::ip::tcp::endpoint rep(address, *cfg_.redirect_http);
    try {
      workers_.front()->open_redirect_listener(rep, port_);
    } catch (const std::system_error& e) {
      throw std::system_error(e.code(), "--redirect-http: cannot listen on " + cfg_.listen.host + ":" +
                                            std::to_string(rep.port()));
    }
  }
}

server::~server() {
  stop();
  wait();
}

void server::start() {
  if (started_) return;
  started_ = true;
  for (auto& w : workers_) {
    threads_.emplace_back([this, wp = w.get()](std::stop_token st) {
      threads_alive_.fetch_add(1);
      {
        std::stop_callback on_stop(st, [wp] { wp->request_stop(); });
        wp->run();
      }
      threads_alive_.fetch_sub(1);
    });
  }
  // Gives memory freed after a burst back to the system, so RSS returns to
  // its baseline (large bodies already use their own mappings; this trims
  // what the many small allocations of a connection burst leave behind).
  housekeeping_ = std::jthread([this](std::stop_token st) {
    threads_alive_.fetch_add(1);
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    while (!st.stop_requested()) {
      cv.wait_for(lock, st, std::chrono::seconds(2), [] { return false; });
      if (st.stop_requested()) break;
      core::release_free_memory();
    }
    threads_alive_.fetch_sub(1);
  });
}

void server::stop() noexcept {
  for (auto& t : threads_) t.request_stop();
  if (!started_) {
    // Never started: drain directly so the io_contexts hold nothing.
    for (auto& w : workers_) w->request_stop();
  }
}

void server::wait() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  if (housekeeping_.joinable()) {
    housekeeping_.request_stop();
    housekeeping_.join();
  }
}

core::live_snapshot server::live() const noexcept {
  core::live_snapshot s;
  const std::size_t n = workers_.size();
#define GATEWAY_STAT_SUM(field, type, name, help) s.field = core::sum(&core::live_shard::field, shards_.get(), n);
  GATEWAY_WORKER_STATS(GATEWAY_STAT_SUM)
#undef GATEWAY_STAT_SUM
  s.threads = threads_alive_.load();
  s.body_bytes_buffered = budget_ ? static_cast<std::int64_t>(budget_->used()) : 0;
  return s;
}

}  // namespace gateway::net
