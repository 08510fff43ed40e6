#pragma once
// Counters of live objects (connections, coroutines, requests, threads),
// kept per worker so the hot path touches only its own cache line; readers
// sum the shards. Tests assert they all return to zero after shutdown.
#include <atomic>
#include <cstdint>

namespace gateway::core {

struct alignas(64) live_shard {
  std::atomic<std::int64_t> connections{0};
  std::atomic<std::int64_t> coroutines{0};
  std::atomic<std::int64_t> requests_in_flight{0};
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> accept_errors{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> bad_requests{0};
  std::atomic<std::uint64_t> session_exceptions{0};
  std::atomic<std::uint64_t> bytes_in{0};      // read from client sockets
  std::atomic<std::uint64_t> body_buffers{0};  // request bodies given their own arena buffer
  std::atomic<std::uint64_t> rejected_connections{0};  // over --max-connections
  std::atomic<std::uint64_t> rejected_bodies{0};       // over --body-budget

  static void add(std::atomic<std::uint64_t>& a, std::uint64_t n) noexcept { a.fetch_add(n, std::memory_order_relaxed); }
  static void inc(std::atomic<std::int64_t>& a) noexcept { a.fetch_add(1, std::memory_order_relaxed); }
  static void dec(std::atomic<std::int64_t>& a) noexcept { a.fetch_sub(1, std::memory_order_relaxed); }
  static void bump(std::atomic<std::uint64_t>& a) noexcept { a.fetch_add(1, std::memory_order_relaxed); }
};

struct live_snapshot {
  std::int64_t connections = 0;
  std::int64_t coroutines = 0;
  std::int64_t requests_in_flight = 0;
  std::int64_t threads = 0;
  std::uint64_t requests_total = 0;
  std::uint64_t connections_total = 0;
  std::uint64_t accept_errors = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t bad_requests = 0;
  std::uint64_t session_exceptions = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t body_buffers = 0;
  std::uint64_t rejected_connections = 0;
  std::uint64_t rejected_bodies = 0;
  std::uint64_t body_bytes_buffered = 0;  // now, against --body-budget
};

// The global budget for buffered request-body bytes: a request whose body
// would cross it gets 503 before a byte of the body is read, so a crowd of
// large uploads cannot push memory past the budget. Any thread.
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

}  // namespace gateway::core
