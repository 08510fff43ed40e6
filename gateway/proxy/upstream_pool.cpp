#include "gateway/proxy/upstream_pool.hpp"

#include <sys/socket.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <cstdio>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "gateway/core/coarse_clock.hpp"
#include "gateway/net/interrupt.hpp"
#include "gateway/proxy/proxy_error.hpp"

namespace gateway::proxy {

namespace {
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
using clock = std::chrono::steady_clock;

// A pooled connection is only worth reusing if the backend has not closed it
// while it sat idle: a non-blocking peek tells EOF (FIN received), reset, or
// stray bytes (a backend that answered twice) from "nothing to read" without
// waiting. This catches most stale connections before a request is sent on
// them; the retry in the handler covers the ones that close in flight.
bool looks_reusable(asio::ip::tcp::socket& s) noexcept {
  char c;
  ssize_t n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
  return false;  // 0: EOF; > 0: unexpected bytes
}
// A connection given back this recently is taken without the peek (one
// syscall per request under load): backends close idle connections after
// seconds, not milliseconds, and one that says it will close (Connection:
// close, HTTP/1.0) was never pooled. The handler's retry still covers a
// connection that turns out closed. What a backend sends after a response
// in a segment of its own (a second response, a HEAD response's body sent
// late, a FIN) within this window is read by the next request on the
// connection (docs/known-issues.md), so the window is kept short: two
// ticks of the coarse clock (4 ms each here), which a connection reused
// under load (within a millisecond or so) stays inside.
constexpr auto fresh_for = std::chrono::milliseconds(8);
}  // namespace

upstream_connection::upstream_connection(upstream_connection&& o) noexcept
    : idle_since(o.idle_since),
      socket_(std::move(o.socket_)),
      tls_(std::move(o.tls_)),
      sessions_(std::move(o.sessions_)),
      stats_(o.stats_),
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
      expiry_timer_(io) {}

upstream_pool::~upstream_pool() { drain(); }

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
    if (now - c.idle_since >= fresh_for && !looks_reusable(c.socket())) {
      core::bump(stats_->stale);
      continue;
    }
    out = std::move(c);
    return true;
  }
  return false;
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
  if (idle_.size() >= limits_.max_idle) {
    // At the cap the oldest idle connection goes: the newest is the least
    // likely to have been closed by the backend's own idle timeout.
    idle_.erase(idle_.begin());
    core::drop(stats_->idle, 1);
  }
  c.idle_since = core::coarse_steady_now();
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
}

}  // namespace gateway::proxy
