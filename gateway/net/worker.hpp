#pragma once
// One worker: a thread, its io_context, its listener, its connections and
// its copy of the middleware chain. Everything here is touched only on the
// worker's own thread, except where marked; other threads reach a worker by
// posting to its io_context.
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gateway/core/arena.hpp"
#include "gateway/core/config.hpp"
#include "gateway/core/live_counters.hpp"
#include "gateway/http/layer.hpp"
#include "gateway/net/parking_lot.hpp"

namespace gateway::net {

struct connection_state;
class tls_terminator;
class accept_steering;
class worker;

// What a chain factory gets for one worker. Handlers may keep a reference
// to it; it lives as long as the chain built with it (a reload builds a new
// chain with a new env).
struct worker_env {
  unsigned index = 0;
  asio::io_context* io = nullptr;
  const core::config* cfg = nullptr;  // the server's (listener, client limits)
  worker* owner = nullptr;            // for a reload: install_chain()
  // Called on the worker's thread when shutdown begins (close idle upstream
  // connections, stop background timers) so the io_context can run dry.
  std::vector<std::function<void()>> on_drain;
  // Called on the worker's thread at each of its sweeps (a quarter of the
  // shortest timeout, at most 250 ms apart), for the chain installed then:
  // upkeep that must happen on a worker no request reaches.
  std::vector<std::function<void()>> on_sweep;
  // Set by a factory: what the chain refers to (its settings, keys), kept
  // alive until the chain is gone.
  std::shared_ptr<const void> owned;
};

using chain_factory = std::function<std::unique_ptr<http::pipeline>(worker_env&)>;

// One built chain with its env. A connection holds the generation it
// started a request with until that response (or tunnel) is finished, so a
// reload never pulls a chain from under a request. Destroyed on the
// worker's thread (or with the worker).
struct chain_generation {
  worker_env env;
  std::unique_ptr<http::pipeline> chain;  // declared after env: destroyed before it
  ~chain_generation() { chain.reset(); }
};

class worker {
 public:
  worker(unsigned index, const core::config& cfg, core::live_shard& counters, core::byte_budget& budget,
         std::size_t max_connections);
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;
  ~worker();

  // --- set-up (before the thread starts) ---
  // With several workers their listening sockets share one port through
  // SO_REUSEPORT. The first_of_group socket binds without it, so that a port
  // another process listens on (with SO_REUSEPORT or not) is refused with
  // EADDRINUSE instead of joined, and turns it on before it listens; each
  // member socket binds with it and joins.
  enum class port_sharing { none, first_of_group, member };
  void open_listener(const asio::ip::tcp::endpoint& ep, port_sharing share);
  std::uint16_t local_port() const;
  void build_chain(const chain_factory& make);
  // HTTPS: every accepted connection gets a TLS stream on the terminator's
  // current certificates (the terminator outlives the worker).
  void set_tls(const tls_terminator* tls) noexcept { tls_ = tls; }
  // The listener group's steering (net/accept_steering.hpp), told of every
  // connection opened or closed, and all the server's workers (this one
  // among them), to which a worker hands connections it accepted beyond its
  // share (place()); with one worker there is neither.
  void set_steering(accept_steering* s, std::span<const std::unique_ptr<worker>> all) noexcept {
    steering_ = s;
    peers_ = all;
  }
  int listener_fd() noexcept { return acceptor_->native_handle(); }
  // --redirect-http (one worker): a plain listener on `ep` answering every
  // request with 308 to https on `https_port` (net/redirect_http.hpp).
  void open_redirect_listener(const asio::ip::tcp::endpoint& ep, std::uint16_t https_port);
  std::uint16_t redirect_port() const;

  // --- reload (any thread) ---
  // Builds a chain for this worker without installing it (handler set-up
  // may block, e.g. on name resolution, so it happens off the worker).
  std::shared_ptr<chain_generation> prepare_chain(const chain_factory& make);
  // Swaps the chain on the worker's thread: requests already started finish
  // on the old one. `done` runs on the worker's thread once swapped (or
  // dropped, when the worker is draining or stopped).
  void install_chain(std::shared_ptr<chain_generation> next, std::function<void()> done);

  // --- the worker's thread ---
  void run();

  // --- any thread ---
  void request_stop();  // begin graceful drain (posts to the worker)

  // --- the worker's thread, used by connections ---
  void attach(connection_state& c) noexcept;
  void detach(connection_state& c) noexcept;
  bool draining() const noexcept { return draining_; }
  // Open client connections, parked ones included.
  std::size_t connection_count() const noexcept { return connection_count_ + parking_.size(); }
  const std::shared_ptr<chain_generation>& current_chain() const noexcept { return chain_; }
  const core::config& cfg() const noexcept { return cfg_; }
  core::live_shard& counters() noexcept { return counters_; }
  core::byte_budget& body_budget() noexcept { return budget_; }
  unsigned index() const noexcept { return env_.index; }
  std::uint64_t next_connection_id() noexcept { return ++connection_ids_; }
  // Spawns a session coroutine for the connection (its first, or the next
  // after it was parked: resume()).
  void start_session(std::shared_ptr<connection_state> state);
  // A connection whose idle session ended: its descriptor (and TLS stream)
  // move to the parking lot (net/parking_lot.hpp). False when it cannot (a
  // drain): the caller closes the socket.
  bool park(connection_state& c);
  // From the parking lot: the client sent (or closed); a new session on the
  // record's socket (and TLS stream), which this takes over.
  void resume(parked_connection& p);
  // First blocks for the request arenas of this worker's connections: an
  // idle connection gives its block back here (see core::arena).
  core::block_pool& arena_blocks() noexcept { return arena_blocks_; }

 private:
  asio::awaitable<void> accept_loop();
  // Accepts and admits up to `most` connections the kernel has completed,
  // without waiting.
  void take_queued(std::size_t most);
  asio::awaitable<void> redirect_loop();
  asio::awaitable<void> redirect_one(asio::ip::tcp::socket s);
  asio::awaitable<bool> read_redirect_head(asio::ip::tcp::socket& s, std::string& head);
  void admit(asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& peer);
  // A connection found queued behind the one the accept loop waited for (a
  // burst), outside a drain: served here, or handed to a worker with
  // clearly fewer connections.
  void place(asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& peer);
  // The worker with the fewest connections (open, and handed to it but not
  // yet taken) if it has at least handoff_margin fewer than this one and
  // more than the steering's by-CPU share are open in all; else null.
  worker* lighter_peer() const noexcept;
  // Open connections plus those handed to this worker and not yet taken
  // (any thread; relaxed reads, a heuristic).
  std::int64_t load() const noexcept;
  // On the accepting worker's thread: moves the socket's descriptor to this
  // worker (a post to its io_context). False, the socket untouched, when
  // this worker has begun to drain (or the socket could not be released).
  bool hand_in(asio::ip::tcp::socket& socket, const asio::ip::tcp::endpoint& peer);
  // On this worker's thread: serves a descriptor handed in.
  void take_handed(int fd, const asio::ip::tcp::endpoint& peer);
  void reserve_descriptor_states();
  void refuse(asio::ip::tcp::socket& s) noexcept;
  void begin_drain();
  void arm_sweep();
  void sweep();

  // The first block of a session's request arena. A proxied request with
  // a short head uses about 3.2 KiB of it (the walk's layer states, three
  // header tables, the head sent upstream; the response's first read
  // buffer is the upstream pool's); 5 KiB leaves room for about 1.6 KiB
  // more of request head (curl's plus a 1,500-byte header fits, plus
  // 1,700 bytes takes a second block).
  // Under load every request waiting on the backend holds one, so each KiB
  // here is 2 MiB at 2,000 connections; a request that needs more takes an
  // extra block for its duration (core/arena.cpp).
  static constexpr std::size_t arena_block_size = 5 * 1024;
  // Before io_: connections (in io_) give their blocks back until io_ is gone.
  // Up to 1,024 blocks (5 MiB), freed by the sweep once the worker is idle.
  // None under the sanitizers, so that ASan sees every block freed.
#if defined(GATEWAY_SANITIZED)
  static constexpr std::size_t pooled_arena_blocks = 0;
#else
  static constexpr std::size_t pooled_arena_blocks = 1024;
#endif
  // Connections accepted per turn of the accept loop (one asynchronous
  // accept, then synchronous ones until the listen queue is empty).
  static constexpr std::size_t accept_batch = 256;
  // How many more connections than the lightest worker an accepting worker
  // must hold before it hands one over: 2 keeps a lone client that opens one
  // connection after another (the previous one still closing) on the worker
  // its CPU steered it to.
  static constexpr std::int64_t handoff_margin = 2;
  // Asio's reactor keeps one descriptor_state (168 bytes) for every socket
  // open at once, in a pool it grows one at a time as sockets arrive and
  // never shrinks. Grown that way, each lands among the blocks of the
  // session that follows and stays when that session's memory is freed, so
  // none of those pages can go back to the system. reserve_descriptor_states()
  // grows the pool ahead of the sockets, descriptor_batch at a time, so the
  // states sit together: reserved while fewer than descriptor_slack spare.
  static constexpr std::size_t descriptor_batch = 256;
  static constexpr std::size_t descriptor_slack = 64;
  std::size_t descriptors_reserved_ = 0;
  int null_fd_ = -1;  // /dev/null: epoll refuses it, so reserving makes no epoll_ctl
  core::block_pool arena_blocks_{arena_block_size, pooled_arena_blocks};
  std::int64_t requests_at_last_sweep_ = 0;
  asio::io_context io_{1};
  // After io_: its watch is a descriptor of io_.
  parking_lot parking_{*this, io_};
  const core::config& cfg_;
  core::live_shard& counters_;
  core::byte_budget& budget_;
  std::size_t max_connections_;
  worker_env env_;
  std::optional<asio::ip::tcp::acceptor> acceptor_;
  const tls_terminator* tls_ = nullptr;
  accept_steering* steering_ = nullptr;
  std::span<const std::unique_ptr<worker>> peers_;
  // Connections handed to this worker whose post has not run yet.
  std::atomic<std::int64_t> arriving_{0};
  // Other workers inside hand_in() for this worker (the low bits), and
  // handoff_closed once this worker began to drain: begin_drain waits for
  // the count to reach zero, so every post made inside runs before the
  // io_context can run dry, and no hand-off starts after it.
  static constexpr std::uint32_t handoff_closed = 1u << 31;
  std::atomic<std::uint32_t> handoff_gate_{0};
  std::optional<asio::ip::tcp::acceptor> redirect_acceptor_;
  std::uint16_t https_port_ = 0;
  std::size_t redirect_open_ = 0;  // redirect connections being answered
  std::shared_ptr<chain_generation> chain_;
  asio::steady_timer sweep_timer_;
  std::chrono::nanoseconds sweep_period_;
  connection_state* first_ = nullptr;  // intrusive list of live connections
  std::size_t connection_count_ = 0;
  bool draining_ = false;
  bool sweep_armed_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
  std::uint64_t connection_ids_ = 0;
};

}  // namespace gateway::net
