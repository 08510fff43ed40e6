#pragma once
// Upstream (backend) connections: a keep-alive pool per worker.
//
// Ownership: a pool belongs to one worker's proxy handler and is used only on
// that worker's thread; it holds at most `max_idle` idle connections, each
// for at most `idle_timeout`. take() hands out the most recently returned
// one, so under load the same working set is reused and connections beyond
// it sit at the bottom until they expire: the pool follows the peak of
// concurrently busy connections over the last `idle_timeout`, without
// connecting and closing while the load holds steady. A connection in use is owned by the request that
// took it (by value, as an upstream_connection) and comes back through
// give_back() only when its response was read completely and the backend did
// not ask to close; anything else closes it. drain() (called from the
// worker's on_drain) closes the idle ones and makes give_back() close from
// then on, so the worker's io_context can run dry.
//
// Watched while idle: give_back() starts the connection's next read at once,
// into a pending_read (below). A backend has nothing to say to an idle
// connection, so any completion while it sits in the pool (bytes: a second
// response, a HEAD response's late body; end of stream; an error) means the
// connection is unusable: the pool closes it and counts it stale. The
// request that takes the connection does not start a read of its own: it
// waits on that same read for its response head, which lands in the
// pending_read's buffer, the response's first buffer. The read costs
// nothing extra: on epoll, Asio's speculative receive at give_back() is the
// one the response's first read would have made, and on io_uring it is the
// same one submission, made earlier. Bytes received but not yet dispatched
// when take() runs (their completion queued behind the request taking the
// connection) are seen on io_uring, where the kernel has put them in the
// read's buffer (pending_read::received_since_watch); on epoll, whose read
// happens only when the backend's descriptor is dispatched, and over TLS
// they are read as the response, as is anything that arrives after take():
// no HTTP/1.1 client can tell stray bytes from an answer once its request is
// out.
//
// Closing a connection whose read is pending interrupts the socket
// (net/interrupt.hpp) and hands the connection to its pending_read, which
// closes it and frees itself when the read returns: a drained or destroyed
// pool leaves no handler that points into it, and no socket is closed
// under a pending operation.
//
// An https member's pool (upstream_tls.hpp) connects with a TLS handshake
// (within the connect timeout) and keeps the TLS connections alive the same
// way; the last session the backend gave is offered to each new connection,
// so only the first one pays a full handshake. A plain member's connections
// carry no TLS state: each operation checks one pointer (read_some, write).
//
// upstream_stats is the one thing read from other threads (metrics, tests).
#include <asio/awaitable.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "gateway/core/stats.hpp"
#include "gateway/net/direct_op.hpp"
#include "gateway/proxy/upstream_tls.hpp"

namespace gateway::proxy {

// Shared by every worker's pool (and the routes' concurrency caps).
#define GATEWAY_UPSTREAM_STATS(X)                                                                              \
  X(opened, counter, "upstream_connections_opened", "Backend connections established")                       \
  X(connect_failures, counter, "upstream_connect_failures", "Backend connects refused, unreachable or timed out") \
  X(reused, counter, "upstream_reused", "Requests sent on a pooled keep-alive connection")                   \
  X(requests, counter, "upstream_requests", "Requests sent to a backend (retries included)")                 \
  X(retries, counter, "upstream_retries", "Requests sent again after a stale pooled connection")            \
  X(failovers, counter, "upstream_failovers", "Requests handed to another group member after a failure")     \
  X(retries_over_budget, counter, "upstream_retries_over_budget", "Retries on another member refused by the retry budget") \
  X(ejections, counter, "upstream_ejections", "Group members ejected after consecutive failures")          \
  X(stale, counter, "upstream_stale", "Pooled connections closed by the backend, or sent bytes, while idle") \
  X(expired, counter, "upstream_idle_expired", "Idle pooled connections closed by the idle timeout")         \
  X(discarded, counter, "upstream_discarded", "Connections closed mid-response (client gone, error, abort)") \
  X(bad_gateway, counter, "upstream_bad_gateway", "502 answers: backend unreachable or its answer broken")   \
  X(gateway_timeout, counter, "upstream_gateway_timeout", "504 answers: the backend was too slow")           \
  X(busy_rejected, counter, "upstream_busy_rejected", "503 answers: requests over --upstream-max-concurrent") \
  X(client_closed, counter, "upstream_client_closed", "Requests whose client left while the response head was awaited (499, backend connection closed)") \
  X(tls_handshakes, counter, "upstream_tls_handshakes", "TLS handshakes completed with https backends (resumed ones included)") \
  X(tls_resumed, counter, "upstream_tls_resumed", "TLS handshakes with https backends that resumed a session") \
  X(tls_failures, counter, "upstream_tls_failures", "TLS handshakes with https backends that failed (verification included)") \
  X(tls_verify_failures, counter, "upstream_tls_verify_failures", "https backends whose certificate failed verification") \
  X(live, gauge, "upstream_connections", "Backend connections open (idle or in use)")                       \
  X(idle, gauge, "upstream_idle_connections", "Backend connections idle in the pools")

struct upstream_stats {
  GATEWAY_STAT_SET(upstream_stats, GATEWAY_UPSTREAM_STATS)
};

inline constexpr auto upstream_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

class pending_read;
class upstream_pool;

// One upstream connection, plain TCP or TLS over TCP, owned by value.
// Closing (or destroying) it keeps upstream_stats::live exact.
class upstream_connection {
 public:
  using tls_stream = asio::ssl::stream<asio::ip::tcp::socket>;

  upstream_connection(asio::io_context& io, upstream_stats& stats) : socket_(io), stats_(&stats) {}
  // The same from a closed socket of the same io_context (upstream_pool::blank()), which
  // stays closed and reusable: moving one skips the service lookup, and its lock, that
  // constructing a socket does (once per proxied request).
  upstream_connection(asio::ip::tcp::socket&& blank, upstream_stats& stats)
      : socket_(std::move(blank)), stats_(&stats) {}
  upstream_connection(upstream_connection&& o) noexcept;
  upstream_connection& operator=(upstream_connection&& o) noexcept;
  upstream_connection(const upstream_connection&) = delete;
  upstream_connection& operator=(const upstream_connection&) = delete;
  ~upstream_connection() { close(); }

  // The TCP socket (under the TLS layer for an https member).
  asio::ip::tcp::socket& socket() noexcept { return tls_ ? tls_->next_layer() : socket_; }
  // The TLS stream, or null for a plain connection.
  tls_stream* tls() noexcept { return tls_.get(); }
  bool is_open() const noexcept { return counted_; }
  // Opens the socket (counted as live from here on); with `tls`, under a
  // new TLS stream of that context, whose new sessions go to `sessions`.
  std::error_code open(const asio::ip::tcp& protocol) noexcept;
  std::error_code open_tls(const asio::ip::tcp& protocol, upstream_tls& tls,
                           std::shared_ptr<tls_session_cache> sessions) noexcept;
  // Closes the TCP socket and frees the TLS state. No close_notify is sent
  // (a pooled connection is dropped without a write); the session stays
  // resumable.
  void close() noexcept;

  // One read or one whole write on whichever stream this is: one pointer
  // test per operation, so a plain connection pays nothing for TLS. A
  // backend that closes a TLS connection without close_notify reports
  // asio::ssl::error::stream_truncated (see is_eof).
  auto read_some(asio::mutable_buffer b) {
    return tls_ ? tls_->async_read_some(b, upstream_nothrow) : socket_.async_read_some(b, upstream_nothrow);
  }
  template <class ConstBuffers>
  auto write(const ConstBuffers& b) {
    return tls_ ? asio::async_write(*tls_, b, upstream_nothrow) : asio::async_write(socket_, b, upstream_nothrow);
  }
  // The same two as above without a coroutine frame per operation
  // (net/direct_op.hpp), for the proxy's per-request exchange: the result
  // lands in `out`, which must live in the awaiting coroutine's frame.
  // `expect_empty`: the response's first read right after the request went
  // out (net::empty_read_hint; plain connections only).
  auto read_some_into(asio::mutable_buffer b, net::io_result& out, bool expect_empty = false) {
    return net::direct(out, [this, b, expect_empty](net::direct_handler h) {
      if (tls_) {
        tls_->async_read_some(b, std::move(h));
      } else {
        const net::empty_read_hint hint(expect_empty);
        socket_.async_read_some(b, std::move(h));
      }
    });
  }
  template <class ConstBuffers>
  auto write_into(const ConstBuffers& b, net::io_result& out) {
    return net::direct(out, [this, &b](net::direct_handler h) {
      if (tls_) asio::async_write(*tls_, b, std::move(h));
      else asio::async_write(socket_, b, std::move(h));
    });
  }
  // End of stream for a tunnel: a FIN, or (TLS) a FIN without close_notify,
  // which many servers send. A close-delimited response body does not
  // accept the latter (proxy_handler: RFC 9112 section 9.8).
  static bool is_eof(const std::error_code& ec) noexcept {
    return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
  }
  // Ends the operation pending on it from outside the coroutine that awaits
  // it; that coroutine closes it afterwards (see net/interrupt.hpp).
  void interrupt() noexcept;

  // The read the pool started when this connection went idle, until the
  // request that took the connection has its result (see upstream_pool):
  // that request waits on it instead of reading. Null otherwise.
  pending_read* watched() const noexcept { return watch_; }
  // The request has the watched read's result: the connection is a plain
  // one again (the request keeps the pending_read as its buffer).
  void unwatch() noexcept { watch_ = nullptr; }

  // Time it was returned to the pool (for the idle timeout).
  std::chrono::steady_clock::time_point idle_since{};

 private:
  friend class upstream_pool;
  // Starts the watched read into `w` (give_back).
  void watch(pending_read& w);

  asio::ip::tcp::socket socket_;                // plain connections
  std::unique_ptr<tls_stream> tls_;             // TLS connections (socket_ then stays closed)
  std::shared_ptr<tls_session_cache> sessions_;  // outlives the SSL that points at it
  upstream_stats* stats_;
  pending_read* watch_ = nullptr;  // see watched()
  bool counted_ = false;
};

// The read a pooled connection keeps pending (upstream_pool's contract), and
// the first buffer of the response that takes the connection (or, lent,
// of a response on a fresh connection): a heap block
// with a stable address, since the connection it belongs to moves (into the
// pool, out to a request). Blocks come from and go back to their pool's
// spares. Whoever is last frees it: the pool (its read completed while
// idle), the request that held it as its buffer (upstream_pool::recycle),
// or the read's completion when the connection was closed under it.
//
// Thread: the pool's.
class pending_read {
 public:
  // As much as a response's first read takes: a small response whole.
  static constexpr std::size_t size = 2048;
  // Bytes of the mark received_since_watch() looks at. Stray bytes that
  // leave all of it zero cannot start an HTTP response either.
  static constexpr std::size_t mark_size = 8;

  pending_read() = default;
  pending_read(const pending_read&) = delete;
  pending_read& operator=(const pending_read&) = delete;

  char* data() noexcept { return buf_; }
  // The read has returned; its result is result().
  bool completed() const noexcept { return !in_flight_; }
  const net::io_result& result() const noexcept { return result_; }
  // Awaits the read's completion (only while !completed()): the result lands
  // in `out`, in the awaiting coroutine's frame (net/direct_op.hpp). Nothing
  // is started. As with a read started here, a cancellation of the
  // coroutine (a hard abort) cancels `conn`'s pending operations, and the
  // read returns operation_aborted; `conn` must outlive the wait.
  auto wait(net::io_result& out, upstream_connection& conn) {
    return net::direct(out, [this, &conn](net::direct_handler h) {
      auto slot = h.get_cancellation_slot();
      if (slot.is_connected()) slot.template emplace<cancel_wait>(&conn);
      waiter_.emplace(std::move(h));
    });
  }
  // The request that took the connection holds this block as its buffer
  // until it gives it back (upstream_pool::recycle).
  void hold() noexcept { held_ = true; }
  // Whether a receive has put bytes into the buffer since the read started
  // (upstream_connection::watch writes a mark of zero bytes there first).
  // On io_uring the kernel receives into the buffer before the completion
  // is reaped, so this tells bytes that arrived while the completion's
  // handler is still queued behind the request now taking the connection.
  // Volatile reads: the writer is the kernel, not this program.
  bool received_since_watch() const noexcept {
    const volatile char* p = buf_;
    for (std::size_t i = 0; i < mark_size; ++i)
      if (p[i] != 0) return true;
    return false;
  }

 private:
  friend class upstream_connection;
  friend class upstream_pool;
  template <class T>
  friend class op_allocator;
  class handler;
  // The wait's cancellation handler, in the coroutine's slot as a read's
  // own would be (and so allocated and freed at the same moments).
  struct cancel_wait {
    // A constructor, not aggregate initialization: emplace() constructs it
    // with parentheses, which clang before 16 refuses for an aggregate.
    explicit cancel_wait(upstream_connection* c) noexcept : conn(c) {}
    upstream_connection* conn;
    void operator()(asio::cancellation_type) noexcept {
      std::error_code ignored;
      conn->socket().cancel(ignored);
    }
  };
  void complete(std::error_code ec, std::size_t n);
  void abandon() noexcept;
  // The read's operation (Asio's, or a TLS read's steps one at a time) is
  // placed in op_slot_: no allocation per watched read. The largest is a
  // TLS read's step on io_uring, 320 bytes with GCC 12; one that does not
  // fit takes the heap.
  void* allocate_op(std::size_t size, std::size_t align);
  void deallocate_op(void* p, std::size_t align) noexcept;

  upstream_pool* pool_ = nullptr;  // set while its connection is idle in that pool
  std::optional<net::direct_handler> waiter_;
  std::optional<upstream_connection> orphan_;  // closed under the read: closed once it returns
  net::io_result result_{};
  bool in_flight_ = false;
  bool held_ = false;
  bool op_slot_used_ = false;
  alignas(std::max_align_t) unsigned char op_slot_[384];
  alignas(16) char buf_[size];
};

struct pool_limits {
  std::uint32_t max_idle = 64;
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(30);
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(2);
};

class upstream_pool {
 public:
  // With `tls`, every connection is TLS, verified against `host` (the
  // backend's name or IP literal); `tls` must outlive the pool.
  upstream_pool(asio::io_context& io, asio::ip::tcp::endpoint backend, pool_limits limits,
                std::shared_ptr<upstream_stats> stats, std::shared_ptr<upstream_tls> tls = nullptr,
                std::string host = {});
  upstream_pool(const upstream_pool&) = delete;
  upstream_pool& operator=(const upstream_pool&) = delete;
  ~upstream_pool();

  // Moves the most recently used idle connection that still looks open into
  // `out` and returns true; false when there is none. Connections that expired
  // or that the backend closed while idle are closed on the way.
  bool take(upstream_connection& out) noexcept;

  // Opens a fresh connection into `out` (closing what it held), with its TLS
  // handshake for an https member, all within the connect timeout or
  // `limit`, whichever is shorter. Errors: proxy_errc::connect_refused,
  // proxy_errc::connect_timeout, proxy_errc::tls_verify_failed,
  // proxy_errc::tls_handshake_failed, or proxy_errc::aborted when `out` was
  // interrupted meanwhile (shutdown).
  asio::awaitable<std::error_code> connect(upstream_connection& out,
                                           std::chrono::nanoseconds limit = std::chrono::nanoseconds::max());

  // Keeps `c` for reuse, with its next read started (watched while idle),
  // or closes it when draining or at the idle cap.
  void give_back(upstream_connection&& c) noexcept;

  // A block for a response read on a fresh connection, held (hold()) until
  // recycle(): every response's first buffer is a pool block, so the request
  // arena keeps none. Null when memory is short.
  pending_read* lend() noexcept;
  // Gives back a pending_read that a response held (hold()); freed later by
  // its read's completion if that is still pending.
  void recycle(pending_read* w) noexcept;

  // Closes every idle connection and stops pooling (worker shutdown).
  void drain() noexcept;

  asio::io_context& io() noexcept { return io_; }
  // A closed socket of io() to move-construct a connection from (see
  // upstream_connection); never opened, on the pool's thread only.
  asio::ip::tcp::socket&& blank() noexcept { return std::move(blank_); }
  upstream_stats& stats() noexcept { return *stats_; }
  bool is_tls() const noexcept { return tls_ != nullptr; }
  std::size_t idle_count() const noexcept { return idle_.size(); }

 private:
  friend class pending_read;
  // An idle connection's watched read returned: the connection is closed.
  void watch_fired(pending_read& w) noexcept;
  // A spare block, or a new one (null when memory is short).
  pending_read* take_spare() noexcept;
  void arm_expiry();
  asio::awaitable<std::error_code> handshake(upstream_connection& out, asio::steady_timer& timer);
  void expire(std::chrono::steady_clock::time_point now) noexcept;
  std::size_t max_spares() const noexcept;

  asio::io_context& io_;
  asio::ip::tcp::endpoint backend_;
  pool_limits limits_;
  std::shared_ptr<upstream_stats> stats_;
  std::shared_ptr<upstream_tls> tls_;                 // null: plain http
  std::string host_;                                  // SNI and the certificate identity
  std::shared_ptr<tls_session_cache> sessions_;       // https only
  std::chrono::steady_clock::time_point logged_at_{};  // the last TLS failure printed (at most one per 10 s)
  std::vector<upstream_connection> idle_;  // oldest first; capacity grows to the peak, at most max_idle
  std::vector<pending_read*> spares_;     // at most max_spares(): an idle connection and a response each hold one
  asio::steady_timer expiry_timer_;
  asio::ip::tcp::socket blank_;  // see blank()
  bool timer_armed_ = false;
  bool draining_ = false;
};

}  // namespace gateway::proxy
