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
};

}  // namespace gateway::core
