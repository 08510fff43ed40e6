#include "gateway/net/worker.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/use_awaitable.hpp>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <exception>
#include <thread>
#include <utility>

#include "gateway/core/coarse_clock.hpp"
#include "gateway/net/accept_steering.hpp"
#include "gateway/net/connection.hpp"
#include "gateway/net/interrupt.hpp"
#include "gateway/net/redirect_http.hpp"
#include "gateway/net/tls_context.hpp"
#include "gateway/net/tls_stream.hpp"

namespace gateway::net {

namespace {
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
using clock = std::chrono::steady_clock;
// A keep-alive connection idle this long gives up its session (read buffer,
// response-head string, coroutine frame: about 3.5 KiB) until it sends again.
constexpr auto shed_idle_after = std::chrono::seconds(1);
constexpr auto fresh_drain_grace = std::chrono::seconds(1);

std::chrono::nanoseconds pick_sweep_period(const core::config& c) {
  // Timeouts are checked by a sweep over this worker's connections (one
  // timer per worker, not one per connection or per read). The period is a
  // quarter of the shortest timeout, so a timeout fires at most 25% late.
  // The upstream response timeouts (global and per route) count too: the
  // sweep enforces them. A reload that brings a shorter route timeout keeps
  // the period, so that timeout may fire up to 250 ms late.
  auto shortest = std::min({c.header_timeout, c.body_timeout, c.idle_timeout, c.write_timeout, c.drain_timeout,
                            c.upstream_timeout});
  for (const auto& r : c.routes)
    if (r.timeout) shortest = std::min(shortest, *r.timeout);
  return std::clamp<std::chrono::nanoseconds>(shortest / 4, std::chrono::milliseconds(5),
                                              std::chrono::milliseconds(250));
}

// The sweep's look at the clients of requests that wait for a backend's
// answer (their guard's client watch on since the sweep before:
// http/upstream_guard.hpp). One poll() per batch of descriptors, without
// waiting, asking for POLLRDHUP alone: bytes a client pipelined meanwhile
// (POLLIN) stay unread for its next request and do not count, a FIN does,
// behind such bytes too (so does a half-close: the client can no longer be
// told apart from one that closed, as nginx decides too), and so do a reset
// or an error (POLLHUP, POLLERR, reported whatever is asked). Over TLS a
// client can end its side with close_notify and no FIN: that alert is a
// record, readable data, so a TLS connection is polled for POLLIN as well
// and its stream looks at what arrived (or what it holds already) without
// blocking (net/tls_stream.hpp, peer_ended()): a close_notify or a broken
// session counts, application data (a pipelined request) does not. A
// client found gone ends its request's backend work at once and gets no
// response. The socket's own reactor registration (epoll or io_uring) is
// not touched.
class client_check {
 public:
  void add(connection_state& c) noexcept {
    if (n_ == batch) flush();
    const short events = c.tls != nullptr ? POLLRDHUP | POLLIN : POLLRDHUP;
    fds_[n_] = pollfd{c.socket.native_handle(), events, 0};
    conns_[n_++] = &c;
  }
  void flush() noexcept {
    if (n_ == 0) return;
    const bool any = ::poll(fds_.data(), n_, 0) > 0;
    for (std::size_t i = 0; i < n_; ++i) {
      connection_state& c = *conns_[i];
      const short revents = any ? fds_[i].revents : 0;
      bool gone = (revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
      if (!gone && c.tls != nullptr) gone = c.tls->peer_ended((revents & POLLIN) != 0);
      if (!gone) continue;
      c.client_gone = true;
      c.request->guard->client_gone();
    }
    n_ = 0;
  }

 private:
  static constexpr std::size_t batch = 128;
  std::array<pollfd, batch> fds_;
  std::array<connection_state*, batch> conns_;
  std::size_t n_ = 0;
};
}  // namespace

worker::worker(unsigned index, const core::config& cfg, core::live_shard& counters, core::byte_budget& budget,
               std::size_t max_connections)
    : cfg_(cfg),
      counters_(counters),
      budget_(budget),
      max_connections_(max_connections),
      sweep_timer_(io_),
      sweep_period_(pick_sweep_period(cfg)) {
  env_.index = index;
  env_.io = &io_;
  env_.cfg = &cfg;
}

worker::~worker() {
  if (null_fd_ >= 0) ::close(null_fd_);
}

void worker::reserve_descriptor_states() {
  // Parked connections keep their sockets, and so their states.
  if (connection_count() + descriptor_slack < descriptors_reserved_) return;
  if (null_fd_ < 0) null_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd_ < 0) return;
  // Registering a descriptor takes a state from the pool (a new one when it
  // is empty); releasing it puts the state back. epoll_ctl answers EPERM
  // for /dev/null, which Asio accepts without registering anything.
  std::vector<asio::posix::stream_descriptor> held;
  held.reserve(descriptor_batch);
  for (std::size_t i = 0; i < descriptor_batch; ++i) {
    std::error_code ec;
    held.emplace_back(io_);
    held.back().assign(null_fd_, ec);
    if (ec) {
      held.pop_back();
      break;
    }
  }
  for (auto& d : held) d.release();
  descriptors_reserved_ += held.size();
}

void worker::open_listener(const asio::ip::tcp::endpoint& ep, port_sharing share) {
  acceptor_.emplace(io_);
  acceptor_->open(ep.protocol());
  acceptor_->set_option(asio::ip::tcp::acceptor::reuse_address(true));
  // One listening socket per worker on the same port: the kernel spreads
  // new connections across them (and place() evens out a burst).
  // A socket binding with SO_REUSEPORT would join any listener of the same
  // user on that port (another gateway still running, which would then take
  // a share of the connections); the first socket binds without it, which
  // fails on a port in use, and sets it before listening so that the
  // other workers' sockets can join it.
  using reuse_port_option = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
  if (share == port_sharing::member) acceptor_->set_option(reuse_port_option(true));
  acceptor_->bind(ep);
  if (share == port_sharing::first_of_group) acceptor_->set_option(reuse_port_option(true));
  acceptor_->listen(asio::socket_base::max_listen_connections);
  // The accept loop drains the listen queue with synchronous accepts that
  // must return would_block instead of waiting.
  acceptor_->non_blocking(true);
}

void worker::open_redirect_listener(const asio::ip::tcp::endpoint& ep, std::uint16_t https_port) {
  redirect_acceptor_.emplace(io_);
  redirect_acceptor_->open(ep.protocol());
  redirect_acceptor_->set_option(asio::ip::tcp::acceptor::reuse_address(true));
  redirect_acceptor_->bind(ep);
  redirect_acceptor_->listen(asio::socket_base::max_listen_connections);
  https_port_ = https_port;
}

std::uint16_t worker::redirect_port() const {
  return redirect_acceptor_ ? redirect_acceptor_->local_endpoint().port() : 0;
}

std::uint16_t worker::local_port() const { return acceptor_ ? acceptor_->local_endpoint().port() : 0; }

void worker::build_chain(const chain_factory& make) { chain_ = prepare_chain(make); }

std::shared_ptr<chain_generation> worker::prepare_chain(const chain_factory& make) {
  auto g = std::make_shared<chain_generation>();
  g->env.index = env_.index;
  g->env.io = env_.io;
  g->env.cfg = env_.cfg;
  g->env.owner = this;
  g->chain = make(g->env);
  return g;
}

void worker::install_chain(std::shared_ptr<chain_generation> next, std::function<void()> done) {
  // If the worker has stopped, the handler is destroyed with the io_context
  // (never run); `next` is released there too, on the destroying thread.
  asio::post(io_, [this, next = std::move(next), done = std::move(done)]() mutable {
    if (!draining_) {
      chain_.swap(next);  // `next` is the old generation now
      // The old chain stops pooling (its idle upstream connections close;
      // those still in use close when their request ends) ...
      for (auto& f : next->env.on_drain) f();
      // ... and is released after the completions that drain queued (this
      // one-thread context runs them in order), so a cancelled timer
      // handler of the old chain never runs after its owner is gone. A
      // request still running on it keeps it alive past that.
      asio::post(io_, [old = std::move(next)] {});
    }
    next.reset();
    if (done) done();
  });
}

void worker::run() {
  asio::co_spawn(io_, accept_loop(), [this](std::exception_ptr e) {
    if (e) core::bump(counters_.session_exceptions);
  });
  if (redirect_acceptor_) {
    asio::co_spawn(io_, redirect_loop(), [this](std::exception_ptr e) {
      if (e) core::bump(counters_.session_exceptions);
    });
  }
  arm_sweep();
  io_.run();
}

void worker::request_stop() {
  asio::post(io_, [this] { begin_drain(); });
}

void worker::attach(connection_state& c) noexcept {
  c.next = first_;
  if (first_) first_->prev = &c;
  first_ = &c;
  ++connection_count_;
  core::bump(counters_.connections);
  if (steering_) steering_->update();
}

void worker::detach(connection_state& c) noexcept {
  if (c.prev) c.prev->next = c.next;
  else first_ = c.next;
  if (c.next) c.next->prev = c.prev;
  c.prev = c.next = nullptr;
  --connection_count_;
  core::drop(counters_.connections);
  if (steering_) steering_->update();
  if (draining_ && connection_count_ == 0) {
    // The last connection is gone: stop the sweep so the io_context runs dry.
    sweep_timer_.cancel();
  }
}

namespace {

// Counts a worker coroutine in the live figures for as long as it runs.
struct coroutine_count {
  explicit coroutine_count(core::live_shard& c) : shard(c) { core::bump(shard.coroutines); }
  ~coroutine_count() { core::drop(shard.coroutines); }
  coroutine_count(const coroutine_count&) = delete;
  coroutine_count& operator=(const coroutine_count&) = delete;
  core::live_shard& shard;
};

}  // namespace

asio::awaitable<void> worker::accept_loop() {
  const coroutine_count counted(counters_);

  asio::steady_timer backoff(io_);
  auto delay = std::chrono::milliseconds(10);
  while (acceptor_ && acceptor_->is_open() && !draining_) {
    reserve_descriptor_states();
    // The peer's address comes with the accept (no getpeername per connection).
    asio::ip::tcp::endpoint peer;
    auto [ec, socket] = co_await acceptor_->async_accept(peer, use_nothrow);
    // A connection accepted as the drain began is served like the queued
    // ones below, not dropped.
    if (!ec && draining_) admit(std::move(socket), peer);
    if (ec == asio::error::operation_aborted || draining_) break;
    if (ec) {
      core::bump(counters_.accept_errors);
      // EMFILE/ENFILE and friends: the pending connection stays queued and
      // accept would fail again at once; wait instead of spinning.
      backoff.expires_after(delay);
      co_await backoff.async_wait(use_nothrow);
      delay = std::min(delay * 2, std::chrono::milliseconds(1000));
      continue;
    }
    delay = std::chrono::milliseconds(10);
    admit(std::move(socket), peer);
    // Take what else is queued now, without waiting: this loop gets one turn
    // per pass of the io_context's queue, and with a thousand connections
    // ready a pass is long, so one accept per turn would leave a burst of
    // new connections waiting in the listen queue for seconds.
    if (!draining_) take_queued(accept_batch - 1);
  }
  if (acceptor_ && draining_) {
    // Connections completed since begin_drain took the queue are served
    // too: closing the listener resets whatever is still queued, and a
    // balancer that already sent a request there cannot retry it.
    take_queued(accept_batch);
    std::error_code ignored;
    acceptor_->close(ignored);
  }
}

void worker::take_queued(std::size_t most) {
  for (std::size_t i = 0; i < most; ++i) {
    reserve_descriptor_states();
    std::error_code aec;
    asio::ip::tcp::endpoint peer;
    asio::ip::tcp::socket queued = acceptor_->accept(peer, aec);
    if (aec) break;  // would_block: the queue is empty (errors: the next async_accept sees them)
    if (draining_)
      admit(std::move(queued), peer);
    else
      place(std::move(queued), peer);
  }
}

asio::awaitable<void> worker::redirect_loop() {
  const coroutine_count counted(counters_);
  asio::steady_timer backoff(io_);
  while (redirect_acceptor_->is_open() && !draining_) {
    auto [ec, socket] = co_await redirect_acceptor_->async_accept(use_nothrow);
    if (ec == asio::error::operation_aborted || draining_) break;
    if (ec) {
      core::bump(counters_.accept_errors);
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(use_nothrow);
      continue;
    }
    if (redirect_open_ >= max_redirect_connections) {
      std::error_code ignored;
      socket.close(ignored);
      continue;
    }
    core::bump(counters_.coroutines);
    asio::co_spawn(io_, redirect_one(std::move(socket)), [this](std::exception_ptr e) {
      if (e) core::bump(counters_.session_exceptions);
    });
  }
  std::error_code ignored;
  redirect_acceptor_->close(ignored);
}

asio::awaitable<bool> worker::read_redirect_head(asio::ip::tcp::socket& s, std::string& head) {
  char buf[2048];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() >= max_redirect_head) co_return false;
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf, std::min(sizeof buf, max_redirect_head - head.size())),
                                              use_nothrow);
    if (ec) co_return false;
    head.append(buf, n);
  }
  co_return true;
}

asio::awaitable<void> worker::redirect_one(asio::ip::tcp::socket s) {
  using namespace asio::experimental::awaitable_operators;
  ++redirect_open_;
  struct done {
    worker& w;
    ~done() {
      --w.redirect_open_;
      core::drop(w.counters_.coroutines);
    }
  } guard{*this};
  // One head, soon: this listener only ever answers with a redirect.
  asio::steady_timer deadline(io_);
  deadline.expires_after(std::min<std::chrono::nanoseconds>(cfg_.header_timeout, std::chrono::seconds(2)));
  std::string head;
  auto first = co_await (read_redirect_head(s, head) || deadline.async_wait(use_nothrow));
  if (first.index() == 0 && std::get<0>(first)) {
    const std::string answer = redirect_response(head, https_port_);
    // A fresh socket's send buffer takes the short answer at once.
    co_await asio::async_write(s, asio::buffer(answer), use_nothrow);
  }
  std::error_code ignored;
  s.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  s.close(ignored);
}

void worker::admit(asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& peer) {
  if (connection_count() >= max_connections_) {
    refuse(socket);
    return;
  }
  core::bump(counters_.connections_total);
  auto state = std::make_shared<connection_state>(*this, std::move(socket), peer);
  if (tls_ != nullptr) {
    state->tls = tls_->open(state->socket);
    if (!state->tls) {
      std::error_code ignored;
      state->socket.close(ignored);
      return;
    }
  }
  start_session(std::move(state));
}

// A burst of connections (a client pool opening its connections at once, a
// load generator's start) lands on one worker: while few are open the
// steering picks the worker by the CPU that sent the SYN, and the whole
// burst is in that worker's listen queue before it has accepted enough to
// switch the group to the hash. Served where they landed, the other worker
// would idle while this one does everything (docs/perf/results.md has what
// that cost). Handing each connection beyond the margin to the lightest
// worker keeps the counts even whichever way the connections arrived. Only
// connections found queued come here: one at a time, the steering's choice
// and the kernel's hash stand, and no descriptor moves between threads.
void worker::place(asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& peer) {
  if (worker* to = lighter_peer(); to != nullptr && to->hand_in(socket, peer)) return;
  admit(std::move(socket), peer);
}

std::int64_t worker::load() const noexcept {
  return counters_.connections.load(std::memory_order_relaxed) + arriving_.load(std::memory_order_relaxed);
}

worker* worker::lighter_peer() const noexcept {
  if (peers_.size() < 2) return nullptr;
  const std::int64_t mine = load();
  std::int64_t total = 0;
  worker* lightest = nullptr;
  std::int64_t least = 0;
  for (const auto& w : peers_) {
    const std::int64_t l = w.get() == this ? mine : w->load();
    total += l;
    if (w.get() != this && (lightest == nullptr || l < least)) {
      lightest = w.get();
      least = l;
    }
  }
  // While the steering follows the CPU (a lone client), its choice stands.
  if (total <= accept_steering::by_cpu_at_most_per_worker * static_cast<std::int64_t>(peers_.size())) return nullptr;
  return mine - least >= handoff_margin ? lightest : nullptr;
}

bool worker::hand_in(asio::ip::tcp::socket& socket, const asio::ip::tcp::endpoint& peer) {
  // Leaves the gate on every way out (begin_drain waits for it), a failed
  // post's exception included.
  struct inside_gate {
    std::atomic<std::uint32_t>& gate;
    ~inside_gate() { gate.fetch_sub(1, std::memory_order_release); }
  };
  const bool closed = (handoff_gate_.fetch_add(1, std::memory_order_acq_rel) & handoff_closed) != 0;
  const inside_gate leave{handoff_gate_};
  if (closed) return false;
  std::error_code ec;
  const int fd = socket.release(ec);
  if (ec) return false;
  // The descriptor is closed if the post is destroyed without running (it
  // cannot be while the gate is open: see begin_drain) or cannot be made.
  struct owned_fd {
    int fd;
    explicit owned_fd(int f) : fd(f) {}
    owned_fd(owned_fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    owned_fd& operator=(owned_fd&&) = delete;
    ~owned_fd() {
      if (fd >= 0) ::close(fd);
    }
  };
  arriving_.fetch_add(1, std::memory_order_relaxed);
  try {
    asio::post(io_, [this, held = owned_fd(fd), peer]() mutable { take_handed(std::exchange(held.fd, -1), peer); });
  } catch (...) {
    arriving_.fetch_sub(1, std::memory_order_relaxed);  // out of memory: the connection is closed
  }
  return true;
}

void worker::take_handed(int fd, const asio::ip::tcp::endpoint& peer) {
  arriving_.fetch_sub(1, std::memory_order_relaxed);
  // The descriptor's state comes from this worker's pool, grown ahead as
  // for the connections it accepts itself.
  reserve_descriptor_states();
  asio::ip::tcp::socket socket(io_);
  std::error_code ec;
  socket.assign(peer.protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    return;
  }
  admit(std::move(socket), peer);
  // Handed over just before this worker began to drain: the sweep, which
  // bounds the drain, may have stopped when the last connection left.
  if (draining_) arm_sweep();
}

void worker::start_session(std::shared_ptr<connection_state> state) {
  core::bump(counters_.coroutines);
  auto& signal = state->cancel_signal;
  asio::co_spawn(io_, serve_connection(state),
                 asio::bind_cancellation_slot(signal.slot(), [this, state](std::exception_ptr e) {
                   // The backstop: a session that threw is counted; the process goes on.
                   if (e) core::bump(counters_.session_exceptions);
                   core::drop(counters_.coroutines);
                 }));
}

bool worker::park(connection_state& c) {
  if (draining_) return false;
  return parking_.park(c);
}

void worker::resume(parked_connection& p) {
  auto state = std::make_shared<connection_state>(*this, std::move(*p.socket), p);
  if (p.tls) {
    state->tls = std::move(p.tls);
    state->tls->rebind(state->socket);
  }
  start_session(std::move(state));
}

// Over the connection cap: answer 503 at once and close, without a
// coroutine or a buffer for it (the socket's send buffer is empty, so a
// non-blocking send of the canned answer completes).
void worker::refuse(asio::ip::tcp::socket& s) noexcept {
  static constexpr std::string_view busy =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Retry-After: 1\r\nContent-Length: 29\r\nConnection: close\r\n\r\ntoo many connections, retry\r\n";
  core::bump(counters_.rejected_connections);
  std::error_code ec;
  s.non_blocking(true, ec);
  s.send(asio::buffer(busy), 0, ec);
  s.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  s.close(ec);
}

void worker::arm_sweep() {
  if (sweep_armed_) return;
  if (draining_ && connection_count_ == 0) return;
  sweep_armed_ = true;
  sweep_timer_.expires_after(sweep_period_);
  sweep_timer_.async_wait([this](std::error_code ec) {
    sweep_armed_ = false;
    if (ec && !(draining_ && connection_count_ > 0)) return;
    sweep();
    arm_sweep();
  });
}

void worker::sweep() {
  // The deadlines and idle stamps it checks were read from the coarse
  // clock, and so is this (core/coarse_clock.hpp).
  auto now = core::coarse_steady_now();
  // No request since the last sweep: the pooled arena blocks go back to
  // malloc (and the housekeeping trim gives the pages to the system).
  const std::int64_t requests = core::read(counters_.requests_total);
  if (requests == requests_at_last_sweep_) arena_blocks_.trim();
  requests_at_last_sweep_ = requests;
  bool hard = draining_ && now >= drain_deadline_;
  parking_.expire(now);
  client_check clients;
  for (connection_state* c = first_; c != nullptr;) {
    connection_state* next = c->next;  // abort() may not unlink, but be safe
    if (hard) {
      if (!c->aborted) c->abort();
    } else {
      if (c->deadline <= now && !c->timed_out) {
        c->timed_out = true;
        c->deadline = clock::time_point::max();
        c->cancel_io();
      } else if (draining_ && c->fresh && c->phase == conn_phase::idle && now - c->idle_since >= fresh_drain_grace) {
        // A fresh connection gets this long to send its first request in a
        // drain (a balancer's comes within milliseconds; a preconnect may
        // never come).
        c->fresh = false;
        c->cancel_io();
      } else if (c->phase == conn_phase::idle && !c->shed && now - c->idle_since >= shed_idle_after) {
        c->shed = true;  // the session frees its buffers and frame; the socket waits without them
        c->cancel_io();
      }
      if (c->request != nullptr && c->request->guard != nullptr) {
        c->request->guard->poll(now);
        if (c->phase == conn_phase::handler && !c->client_gone && c->request->guard->client_check_due())
          clients.add(*c);
      }
    }
    c = next;
  }
  clients.flush();
  if (chain_)
    for (auto& f : chain_->env.on_sweep) f();
}

void worker::begin_drain() {
  if (draining_) return;
  draining_ = true;
  drain_deadline_ = clock::now() + cfg_.drain_timeout;
  // No worker hands a connection here from now on; one inside hand_in()
  // finishes its post (a few instructions) before the drain goes on.
  handoff_gate_.fetch_or(handoff_closed, std::memory_order_acq_rel);
  while ((handoff_gate_.load(std::memory_order_acquire) & ~handoff_closed) != 0) std::this_thread::yield();
  if (acceptor_) {
    // Connections the kernel has already completed are served, not reset
    // with the listener: a balancer counts them as sent to this instance.
    take_queued(accept_batch);
    // The accept loop closes the listener once its pending accept has
    // returned (closing under it is unsafe with io_uring: net/interrupt.hpp).
    std::error_code ignored;
    acceptor_->cancel(ignored);
  }
  if (redirect_acceptor_) {
    std::error_code ignored;
    redirect_acceptor_->cancel(ignored);
  }
  // Parked connections are idle and past the fresh-connection grace: close them.
  parking_.shut();
  for (auto& f : env_.on_drain) f();
  if (chain_)
    for (auto& f : chain_->env.on_drain) f();
  for (connection_state* c = first_; c != nullptr; c = c->next) {
    c->stop_requested = true;
    // An idle keep-alive connection has nothing in flight, and a lingering
    // close only waits out a refused body: end both now.
    if ((c->phase == conn_phase::idle && !c->fresh) || c->phase == conn_phase::linger) c->cancel_io();
  }
  if (connection_count_ == 0) sweep_timer_.cancel();
}

}  // namespace gateway::net
