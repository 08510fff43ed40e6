#pragma once
// The server's own figures: live objects (connections, coroutines, requests
// in flight; tests assert they return to zero after shutdown) and what the
// connections met (timeouts, refusals, bytes), kept per worker.
#include <atomic>
#include <cstdint>

#include "gateway/core/stats.hpp"

namespace gateway::core {

// Per worker: the worker alone writes its shard (so the hot path touches
// only its own cache line); readers sum the shards (net::server::live(),
// /metrics).
#define GATEWAY_WORKER_STATS(X)                                                                                  \
  X(connections, gauge, "connections", "Open client connections")                                               \
  X(coroutines, gauge, "coroutines", "Coroutines alive: one per connection (none while parked idle), one accept loop per worker") \
  X(parked, gauge, "parked_connections",                                                                         \
    "Idle client connections parked without a session (plain and TLS; also counted in connections)")            \
  X(requests_in_flight, gauge, "requests_in_flight", "Requests being served")                                   \
  X(requests_total, counter, "requests_read", "Requests read from clients (head and body complete)")           \
  X(connections_total, counter, "connections_accepted", "Client connections accepted")                         \
  X(accept_errors, counter, "accept_errors", "Failed accepts (out of file descriptors, ...), each followed by a back-off") \
  X(timeouts, counter, "client_timeouts", "Requests whose head, body (408) or response (--write-timeout) stalled past its timeout") \
  X(bad_requests, counter, "bad_requests", "Malformed requests refused (400 and kin) before any layer ran")     \
  X(session_exceptions, counter, "session_exceptions", "Connections ended by an unexpected exception (a bug)")  \
  X(bytes_in, counter, "client_bytes_read", "Bytes read from client connections")                               \
  X(body_buffers, counter, "request_body_buffers", "Request bodies copied into a buffer of their own")          \
  X(rejected_connections, counter, "rejected_connections", "Connections refused with 503 over --max-connections") \
  X(rejected_bodies, counter, "rejected_bodies", "Requests refused with 503 over --body-budget")                \
  X(proxy_rejected, counter, "proxy_protocol_rejected",                                                          \
    "Connections closed without a valid PROXY protocol header (--proxy-protocol): malformed, cut short or stalled past --header-timeout") \
  X(tls_handshakes, counter, "tls_handshakes", "TLS handshakes completed with clients (resumed ones included)")  \
  X(tls_resumed, counter, "tls_resumed", "TLS handshakes with clients that resumed a session (a ticket)")        \
  X(tls_failures, counter, "tls_handshake_failures",                                                             \
    "TLS handshakes with clients that failed: not TLS, an old version, no shared cipher, closed midway")         \
  X(tls_timeouts, counter, "tls_handshake_timeouts", "TLS handshakes with clients cut by --header-timeout")

struct alignas(64) live_shard {
  GATEWAY_STAT_SET(live_shard, GATEWAY_WORKER_STATS)
};

#define GATEWAY_STAT_VALUE(field, type, name, help) std::int64_t field = 0;
// The shards summed, with the server's own figures.
struct live_snapshot {
  GATEWAY_WORKER_STATS(GATEWAY_STAT_VALUE)
  std::int64_t threads = 0;              // worker and housekeeping threads alive
  std::int64_t body_bytes_buffered = 0;  // now, against --body-budget
};
#undef GATEWAY_STAT_VALUE

// The global budget for buffered request-body bytes (--body-budget): a
// request takes from it as its body's buffer grows, before the bytes that
// need the room are read, and gets 503 when the room cannot be taken, so a
// crowd of large uploads cannot push memory past the budget. Any thread.
class byte_budget {
 public:
  explicit byte_budget(std::uint64_t limit) noexcept : limit_(limit) {}
  bool try_take(std::uint64_t n) noexcept {
    std::uint64_t cur = used_.load(std::memory_order_relaxed);
    do {
      if (cur + n > limit_) return false;
    } while (!used_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
    return true;
  }
  void give_back(std::uint64_t n) noexcept { used_.fetch_sub(n, std::memory_order_relaxed); }
  std::uint64_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
  std::uint64_t limit() const noexcept { return limit_; }

 private:
  std::uint64_t limit_;
  std::atomic<std::uint64_t> used_{0};
};

// One request's share of a byte_budget: everything taken for it (the body
// the connection reads, a body a layer decodes from it) is given back at
// once by release(), when the request is over and its arena with the
// memory those bytes counted is reset. Owned by the connection's session;
// layers reach it through http::request_context::body_budget. One thread.
class budget_hold {
 public:
  explicit budget_hold(byte_budget& b) noexcept : budget_(&b) {}
  ~budget_hold() { release(); }
  budget_hold(const budget_hold&) = delete;
  budget_hold& operator=(const budget_hold&) = delete;

  bool try_take(std::uint64_t n) noexcept {
    if (!budget_->try_take(n)) return false;
    taken_ += n;
    return true;
  }
  // Bytes already taken from budget() by a helper that counts them itself
  // (middleware::decompress), handed over to be given back with the rest.
  void adopt(std::uint64_t n) noexcept { taken_ += n; }
  void release() noexcept {
    if (taken_ != 0) budget_->give_back(taken_);
    taken_ = 0;
  }
  std::uint64_t taken() const noexcept { return taken_; }
  byte_budget& budget() const noexcept { return *budget_; }

 private:
  byte_budget* budget_;
  std::uint64_t taken_ = 0;
};

}  // namespace gateway::core
