#include "gateway/proxy/upstream_pool.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/use_awaitable.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>
#include <utility>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "gateway/core/coarse_clock.hpp"
#include "gateway/net/interrupt.hpp"
#include "gateway/proxy/proxy_error.hpp"

namespace gateway::proxy {

namespace {
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
using clock = std::chrono::steady_clock;
}  // namespace

// The allocator of a watched read's operations: its block's op slot. Asio
// frees an operation's memory before it calls or destroys the handler, so
// the block is alive whenever this is used.
template <class T>
class op_allocator {
 public:
  using value_type = T;
  explicit op_allocator(pending_read* w) noexcept : w_(w) {}
  template <class U>
  op_allocator(const op_allocator<U>& o) noexcept : w_(o.w_) {}
  T* allocate(std::size_t n) { return static_cast<T*>(w_->allocate_op(n * sizeof(T), alignof(T))); }
  void deallocate(T* p, std::size_t) noexcept { w_->deallocate_op(p, alignof(T)); }
  friend bool operator==(const op_allocator& a, const op_allocator& b) noexcept { return a.w_ == b.w_; }
  friend bool operator!=(const op_allocator& a, const op_allocator& b) noexcept { return a.w_ != b.w_; }

 private:
  template <class U>
  friend class op_allocator;
  pending_read* w_;
};

void* pending_read::allocate_op(std::size_t bytes, std::size_t align) {
  if (!op_slot_used_ && bytes <= sizeof op_slot_ && align <= alignof(std::max_align_t)) {
    op_slot_used_ = true;
    return op_slot_;
  }
  // Larger than expected, or a second operation at once: the heap.
  if (align > __STDCPP_DEFAULT_NEW_ALIGNMENT__) return ::operator new(bytes, std::align_val_t(align));
  return ::operator new(bytes);
}

void pending_read::deallocate_op(void* p, std::size_t align) noexcept {
  if (p == op_slot_) {
    op_slot_used_ = false;
    return;
  }
  if (align > __STDCPP_DEFAULT_NEW_ALIGNMENT__) ::operator delete(p, std::align_val_t(align));
  else ::operator delete(p);
}

// The completion handler of a watched read. It owns nothing but a pointer to
// its block, and reports to the block whether it was called: an io_context
// destroyed with the read pending destroys the handler uncalled.
class pending_read::handler {
 public:
  using allocator_type = op_allocator<void>;

  explicit handler(pending_read* w) noexcept : w_(w), slot_(w) {}
  handler(handler&& o) noexcept : w_(std::exchange(o.w_, nullptr)), slot_(o.slot_) {}
  handler& operator=(handler&&) = delete;
  ~handler() {
    if (w_ != nullptr) w_->abandon();
  }
  void operator()(std::error_code ec, std::size_t n) { std::exchange(w_, nullptr)->complete(ec, n); }
  allocator_type get_allocator() const noexcept { return allocator_type(slot_); }

 private:
  pending_read* w_;     // null once called or moved from
  pending_read* slot_;  // the allocator's block, kept by a moved-from handler too
};

void pending_read::complete(std::error_code ec, std::size_t n) {
  in_flight_ = false;
  result_ = net::io_result{ec, n};
  if (orphan_) {
    // Its connection was closed while the read was pending.
    orphan_.reset();
    if (!held_) delete this;
    return;
  }
  if (pool_ != nullptr) {
    pool_->watch_fired(*this);  // idle: bytes, end of stream or an error
    return;
  }
  // Taken: the request waits for this (or will look at the result).
  if (waiter_) {
    net::direct_handler h = std::move(*waiter_);
    waiter_.reset();
    h(ec, n);  // resumes the request; it may free this block
  }
}

void pending_read::abandon() noexcept {
  // Never to complete: its io_context is being destroyed. A request waiting
  // on it is destroyed with it, as Asio destroys the handlers it holds.
  in_flight_ = false;
  result_ = net::io_result{asio::error::operation_aborted, 0};
  orphan_.reset();
  if (waiter_) {
    std::optional<net::direct_handler> h = std::move(waiter_);
    waiter_.reset();
  }
  if (pool_ == nullptr && !held_) delete this;
}


upstream_connection::upstream_connection(upstream_connection&& o) noexcept
    : idle_since(o.idle_since),
      socket_(std::move(o.socket_)),
      tls_(std::move(o.tls_)),
      sessions_(std::move(o.sessions_)),
      stats_(o.stats_),
      watch_(std::exchange(o.watch_, nullptr)),
      counted_(o.counted_) {
  o.counted_ = false;
}

upstream_connection& upstream_connection::operator=(upstream_connection&& o) noexcept {
  if (this != &o) {
    close();
    socket_ = std::move(o.socket_);
    tls_ = std::move(o.tls_);
    sessions_ = std::move(o.sessions_);
    stats_ = o.stats_;
    watch_ = std::exchange(o.watch_, nullptr);
    counted_ = o.counted_;
    idle_since = o.idle_since;
    o.counted_ = false;
  }
  return *this;
}

std::error_code upstream_connection::open(const asio::ip::tcp& protocol) noexcept {
  close();
  std::error_code ec;
  socket_.open(protocol, ec);
  if (!ec) {
    counted_ = true;
    core::bump(stats_->live, 1);
  }
  return ec;
}

std::error_code upstream_connection::open_tls(const asio::ip::tcp& protocol, upstream_tls& tls,
                                              std::shared_ptr<tls_session_cache> sessions) noexcept {
  close();
  std::error_code ec;
  try {
    tls_ = std::make_unique<tls_stream>(socket_.get_executor(), tls.context());
  } catch (const std::exception&) {
    return make_error_code(std::errc::not_enough_memory);  // SSL_new failed
  }
  sessions_ = std::move(sessions);
  tls_->next_layer().open(protocol, ec);
  if (ec) {
    tls_.reset();
    return ec;
  }
  counted_ = true;
  core::bump(stats_->live, 1);
  return ec;
}

void upstream_connection::close() noexcept {
  if (pending_read* w = std::exchange(watch_, nullptr); w != nullptr && w->in_flight_) {
    // The watched read is still pending: the socket may be closed only once
    // it has returned (net/interrupt.hpp). It returns at once now, and its
    // block closes the connection then. Not counted as live from here on.
    interrupt();
    if (counted_) {
      counted_ = false;
      core::drop(stats_->live, 1);
    }
    w->pool_ = nullptr;
    w->orphan_.emplace(std::move(*this));
    return;
  }
  std::error_code ignored;
  if (tls_) {
    // Freeing an SSL that was not shut down marks its session not
    // resumable (OpenSSL's ssl_clear_bad_session); the session a pool
    // keeps must stay usable, whatever ended this connection.
    SSL_set_shutdown(tls_->native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    if (tls_->next_layer().is_open()) tls_->next_layer().close(ignored);
    tls_.reset();
    sessions_.reset();
  }
  if (socket_.is_open()) socket_.close(ignored);
  if (counted_) {
    counted_ = false;
    core::drop(stats_->live, 1);
  }
}

void upstream_connection::interrupt() noexcept {
  if (socket().is_open()) net::interrupt(socket());
}

void upstream_connection::watch(pending_read& w) {
  watch_ = &w;
  w.in_flight_ = true;
  std::memset(w.buf_, 0, pending_read::mark_size);
  const auto b = asio::buffer(w.buf_, pending_read::size);
  if (tls_) {
    tls_->async_read_some(b, pending_read::handler(&w));
  } else {
    // Nothing is expected: on io_uring the receive waits for readiness first.
    const net::empty_read_hint hint(true);
    socket_.async_read_some(b, pending_read::handler(&w));
  }
}

upstream_pool::upstream_pool(asio::io_context& io, asio::ip::tcp::endpoint backend, pool_limits limits,
                             std::shared_ptr<upstream_stats> stats, std::shared_ptr<upstream_tls> tls,
                             std::string host)
    : io_(io),
      backend_(backend),
      limits_(limits),
      stats_(std::move(stats)),
      tls_(std::move(tls)),
      host_(std::move(host)),
      sessions_(tls_ ? std::make_shared<tls_session_cache>() : nullptr),
      expiry_timer_(io),
      blank_(io) {}

upstream_pool::~upstream_pool() {
  drain();
  for (pending_read* w : spares_) delete w;
}

bool upstream_pool::take(upstream_connection& out) noexcept {
  const auto now = core::coarse_steady_now();
  while (!idle_.empty()) {
    upstream_connection c = std::move(idle_.back());
    idle_.pop_back();
    core::drop(stats_->idle, 1);
    if (now - c.idle_since >= limits_.idle_timeout) {
      core::bump(stats_->expired);
      continue;  // closed by its destructor
    }
    // Its watched read has not returned (else the pool would have closed
    // it). It may have received bytes whose completion is still queued in
    // this pass of the worker's loop, after the request taking it (io_uring:
    // the kernel received them into the read's buffer before the completion
    // was reaped): those are no response to a request not yet sent.
    if (c.watch_->received_since_watch()) {
      core::bump(stats_->stale);
      continue;  // closed by its destructor once the queued completion runs
    }
    // The backend has sent nothing since its last response. The request
    // waits on that read for its response.
    c.watch_->pool_ = nullptr;
    out = std::move(c);
    return true;
  }
  return false;
}

std::size_t upstream_pool::max_spares() const noexcept {
  // Under a steady load each connection in use comes back (and takes a
  // spare) just before its response gives its own block back: as many
  // spares as connections, at most.
  return std::max<std::size_t>(limits_.max_idle, 4);
}

pending_read* upstream_pool::take_spare() noexcept {
  if (spares_.empty()) return new (std::nothrow) pending_read;
  pending_read* w = spares_.back();
  spares_.pop_back();
  return w;
}

pending_read* upstream_pool::lend() noexcept {
  pending_read* w = take_spare();
  if (w != nullptr) w->hold();
  return w;
}

void upstream_pool::recycle(pending_read* w) noexcept {
  w->held_ = false;
  if (w->in_flight_) return;  // its connection was closed under the read: freed when the read returns
  if (spares_.size() >= max_spares()) {
    delete w;
    return;
  }
  try {
    spares_.push_back(w);  // grows to the peak once, then never reallocates
  } catch (const std::bad_alloc&) {
    delete w;
  }
}

void upstream_pool::watch_fired(pending_read& w) noexcept {
  for (auto it = idle_.begin(); it != idle_.end(); ++it) {
    if (it->watch_ != &w) continue;
    upstream_connection gone = std::move(*it);
    idle_.erase(it);
    core::drop(stats_->idle, 1);
    core::bump(stats_->stale);
    gone.close();  // its read has returned: closed now
    break;
  }
  w.pool_ = nullptr;
  recycle(&w);
}

asio::awaitable<std::error_code> upstream_pool::connect(upstream_connection& out, std::chrono::nanoseconds limit) {
  using namespace asio::experimental::awaitable_operators;
  if (tls_ ? out.open_tls(backend_.protocol(), *tls_, sessions_) : out.open(backend_.protocol())) {
    core::bump(stats_->connect_failures);
    co_return make_error_code(proxy_errc::connect_refused);  // EMFILE and friends
  }
  asio::steady_timer timer(io_, std::min(limits_.connect_timeout, limit));
  auto result = co_await (out.socket().async_connect(backend_, use_nothrow) || timer.async_wait(use_nothrow));
  std::error_code ec;
  if (result.index() == 1) {
    // The timer finished first: expired, or cancelled along with the request.
    const bool cancelled = static_cast<bool>(std::get<0>(std::get<1>(result)));
    out.close();
    core::bump(stats_->connect_failures);
    co_return make_error_code(cancelled ? proxy_errc::aborted : proxy_errc::connect_timeout);
  }
  ec = std::get<0>(std::get<0>(result));
  if (ec || !out.is_open()) {
    const bool aborted = !out.is_open() || ec == asio::error::operation_aborted;
    out.close();
    core::bump(stats_->connect_failures);
    co_return make_error_code(aborted ? proxy_errc::aborted : proxy_errc::connect_refused);
  }
  std::error_code ignored;
  out.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
  if (tls_) {
    const std::error_code hec = co_await handshake(out, timer);
    if (hec) co_return hec;
  }
  core::bump(stats_->opened);
  co_return std::error_code{};
}

// The TLS handshake of a fresh connection, within what is left of the
// connect timeout. A certificate that fails verification is printed (at
// most once per 10 s per member and worker: a misconfigured backend must
// not flood the log) and counted; the request gets 502.
asio::awaitable<std::error_code> upstream_pool::handshake(upstream_connection& out, asio::steady_timer& timer) {
  using namespace asio::experimental::awaitable_operators;
  SSL* ssl = out.tls()->native_handle();
  if (!tls_->prepare(ssl, host_, *sessions_)) {
    out.close();
    core::bump(stats_->tls_failures);
    co_return make_error_code(proxy_errc::tls_handshake_failed);
  }
  auto result = co_await (out.tls()->async_handshake(asio::ssl::stream_base::client, use_nothrow) ||
                          timer.async_wait(use_nothrow));
  if (result.index() == 1) {
    const bool cancelled = static_cast<bool>(std::get<0>(std::get<1>(result)));
    out.close();
    core::bump(stats_->tls_failures);
    co_return make_error_code(cancelled ? proxy_errc::aborted : proxy_errc::connect_timeout);
  }
  const std::error_code ec = std::get<0>(std::get<0>(result));
  if (ec || !out.is_open()) {
    const bool aborted = !out.is_open() || ec == asio::error::operation_aborted;
    const long verify = SSL_get_verify_result(ssl);
    const bool bad_certificate = tls_->verifies() && verify != X509_V_OK;
    if (!aborted) {
      core::bump(stats_->tls_failures);
      if (bad_certificate) core::bump(stats_->tls_verify_failures);
      const auto now = clock::now();
      if (logged_at_ == clock::time_point{} || now - logged_at_ >= std::chrono::seconds(10)) {
        logged_at_ = now;
        // An unknown issuer is what --upstream-ca fixes; a wrong name or an
        // expired certificate it does not.
        const bool unknown_issuer = verify == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                                    verify == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
                                    verify == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
                                    verify == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
                                    verify == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
        if (bad_certificate)
          std::fprintf(stderr, "gateway: upstream https://%s port %u: certificate verification failed: %s; answering 502%s\n",
                       host_.c_str(), static_cast<unsigned>(backend_.port()), X509_verify_cert_error_string(verify),
                       unknown_issuer ? " (trust its CA with --upstream-ca FILE)" : "");
        else
          std::fprintf(stderr, "gateway: upstream https://%s port %u: TLS handshake failed: %s; answering 502\n",
                       host_.c_str(), static_cast<unsigned>(backend_.port()), ec.message().c_str());
      }
    }
    out.close();
    sessions_->forget();
    co_return make_error_code(aborted ? proxy_errc::aborted
                              : bad_certificate ? proxy_errc::tls_verify_failed
                                                : proxy_errc::tls_handshake_failed);
  }
  core::bump(stats_->tls_handshakes);
  if (SSL_session_reused(ssl) == 1) core::bump(stats_->tls_resumed);
  co_return std::error_code{};
}

void upstream_pool::give_back(upstream_connection&& c) noexcept {
  if (!c.is_open()) return;
  if (draining_ || limits_.max_idle == 0 || limits_.idle_timeout.count() <= 0) {
    c.close();
    return;
  }
  pending_read* w = take_spare();
  if (w == nullptr) {
    c.close();
    return;
  }
  if (idle_.size() >= limits_.max_idle) {
    // At the cap the oldest idle connection goes: the newest is the least
    // likely to have been closed by the backend's own idle timeout.
    idle_.erase(idle_.begin());
    core::drop(stats_->idle, 1);
  }
  c.idle_since = core::coarse_steady_now();
  w->pool_ = this;
  c.watch(*w);
  idle_.push_back(std::move(c));
  core::bump(stats_->idle, 1);
  arm_expiry();
}

void upstream_pool::drain() noexcept {
  draining_ = true;
  if (timer_armed_) expiry_timer_.cancel();
  core::drop(stats_->idle, static_cast<std::int64_t>(idle_.size()));
  idle_.clear();
}

// One timer per pool, armed only while something is idle, fires when the
// oldest idle connection expires; idle sockets do not linger past the
// timeout even when no request comes to take them.
void upstream_pool::arm_expiry() {
  if (timer_armed_ || draining_ || idle_.empty()) return;
  timer_armed_ = true;
  expiry_timer_.expires_at(idle_.front().idle_since + limits_.idle_timeout);
  expiry_timer_.async_wait([this](std::error_code ec) {
    // Cancelled: the pool may be gone (its timer cancels on destruction), so
    // touch nothing.
    if (ec == asio::error::operation_aborted) return;
    timer_armed_ = false;
    if (ec || draining_) return;
    expire(clock::now());
    arm_expiry();
  });
}

void upstream_pool::expire(clock::time_point now) noexcept {
  std::size_t n = 0;
  while (n < idle_.size() && now - idle_[n].idle_since >= limits_.idle_timeout) ++n;
  if (n == 0) return;
  idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(n));
  core::drop(stats_->idle, static_cast<std::int64_t>(n));
  core::bump(stats_->expired, static_cast<std::int64_t>(n));
  // The load that needed those connections is gone: so are its spare blocks
  // (a connection given back takes one; there are no more than that left).
  const std::size_t keep = std::max<std::size_t>(idle_.size(), 4);
  while (spares_.size() > keep) {
    delete spares_.back();
    spares_.pop_back();
  }
}

}  // namespace gateway::proxy
