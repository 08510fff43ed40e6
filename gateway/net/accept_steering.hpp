#pragma once
// Which worker's listener takes a new connection. The workers' listeners
// form one SO_REUSEPORT group; the kernel picks one of them per SYN.
//
// With few connections open, a classic BPF program attached to the group
// picks the listener of worker (CPU that handles the SYN) mod (workers): a
// client that opens one connection after another (a TLS handshake per
// request, a health checker, a script) keeps meeting the same worker, whose
// caches are warm and which the scheduler can keep on the client's CPU, as a
// single worker would serve it. Left to the kernel's hash of addresses and
// ports, consecutive connections land on either worker at random, and every
// other one wakes a worker that has gone cold, often on the other CPU.
//
// With more connections open, a second program returns an index outside the
// group, which makes the kernel fall back to that hash, so clients that open
// connections from one CPU over time spread over the workers. The switch has
// hysteresis (see the constants below) and costs one setsockopt; between
// switches, update() is a few relaxed loads. It reacts to connections
// accepted, not to SYNs: a burst (a client pool opening its connections at
// once) is in one listener's queue before the switch, and the worker that
// accepts it hands what it holds beyond its share to the others
// (worker::place).
//
// Where the kernel refuses the programs (no SO_ATTACH_REUSEPORT_CBPF, a
// seccomp filter), the group keeps the kernel's hash throughout.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>

#include "gateway/core/live_counters.hpp"

namespace gateway::net {

class accept_steering {
 public:
  // Open connections (all workers) at or below which connections follow the
  // CPU, per worker; above spread_above_per_worker they follow the hash.
  static constexpr std::int64_t by_cpu_at_most_per_worker = 2;
  static constexpr std::int64_t spread_above_per_worker = 4;

  // `listener`: any socket of the group (the programs apply to the group).
  // `shards`: the workers' live figures, whose `connections` gauges are
  // summed. Attaches the CPU program at once.
  accept_steering(int listener, std::span<const core::live_shard> shards) noexcept;

  // Any worker's thread, after a connection opened or closed.
  void update() noexcept {
    const int mode = mode_.load(std::memory_order_relaxed);
    if (mode == off) return;
    const std::int64_t open = open_connections();
    if (mode == by_cpu ? open > spread_above_ : open <= by_cpu_at_most_) switch_mode();
  }

  // Whether connections follow the CPU now (for tests).
  bool by_cpu_now() const noexcept { return mode_.load(std::memory_order_relaxed) == by_cpu; }
  // Whether the kernel took the programs.
  bool active() const noexcept { return mode_.load(std::memory_order_relaxed) != off; }

 private:
  enum : int { off, by_cpu, by_hash };
  std::int64_t open_connections() const noexcept;
  void switch_mode() noexcept;
  bool attach(bool cpu) noexcept;

  int listener_;
  std::span<const core::live_shard> shards_;
  std::int64_t by_cpu_at_most_;
  std::int64_t spread_above_;
  std::atomic<int> mode_{off};
  std::mutex switching_;  // orders the setsockopt calls with mode_
};

}  // namespace gateway::net
