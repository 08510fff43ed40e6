#pragma once
// The server: N workers (threads with their own io_context and listener on
// the same port), started and stopped as a unit.
//
// Shutdown is structured: stop() asks every worker thread (std::jthread) to
// stop through its stop_token; each worker closes its listener, closes idle
// connections, lets in-flight requests finish until the drain deadline and
// then aborts what is left. wait() returns when every thread has joined; by
// then no connection, coroutine, timer or socket of the server is alive, and
// live() shows zeros.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <stop_token>
#include <thread>
#include <vector>

#include "gateway/core/config.hpp"
#include "gateway/core/live_counters.hpp"
#include "gateway/net/accept_steering.hpp"
#include "gateway/net/tls_context.hpp"
#include "gateway/net/worker.hpp"

namespace gateway::net {

class server {
 public:
  // Binds the listeners (throws std::system_error naming the address on
  // failure) and builds one chain per worker. Nothing runs yet. With `tls`,
  // the listener speaks HTTPS with its certificates (shared by every
  // worker, reloaded through it).
  server(const core::config& cfg, const chain_factory& make_chain, std::shared_ptr<tls_terminator> tls = nullptr);
  ~server();  // stop() + wait()
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  void start();
  void stop() noexcept;  // any thread, idempotent
  void wait();           // joins every thread
  std::uint16_t port() const noexcept { return port_; }
  unsigned worker_count() const noexcept { return static_cast<unsigned>(workers_.size()); }
  core::live_snapshot live() const noexcept;
  // The workers' stat shards, one per worker (for /metrics).
  std::span<const core::live_shard> stats() const noexcept { return {shards_.get(), workers_.size()}; }
  const core::config& cfg() const noexcept { return cfg_; }
  tls_terminator* tls() const noexcept { return tls_.get(); }
  // How new connections are spread over the workers (null with one worker).
  const accept_steering* steering() const noexcept { return steering_.get(); }
  // The --redirect-http listener's port (0: none).
  std::uint16_t redirect_port() const { return workers_.empty() ? 0 : workers_.front()->redirect_port(); }

 private:
  core::config cfg_;
  std::shared_ptr<tls_terminator> tls_;  // before the workers: they point to it
  std::unique_ptr<core::live_shard[]> shards_;
  std::unique_ptr<core::byte_budget> budget_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::unique_ptr<accept_steering> steering_;  // with more than one worker
  std::vector<std::jthread> threads_;
  std::jthread housekeeping_;
  std::atomic<std::int64_t> threads_alive_{0};
  std::uint16_t port_ = 0;
  bool started_ = false;
};

}  // namespace gateway::net
