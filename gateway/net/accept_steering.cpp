#include "gateway/net/accept_steering.hpp"

#include <linux/filter.h>
#include <sys/socket.h>

namespace gateway::net {

accept_steering::accept_steering(int listener, std::span<const core::live_shard> shards) noexcept
    : listener_(listener),
      shards_(shards),
      by_cpu_at_most_(by_cpu_at_most_per_worker * static_cast<std::int64_t>(shards.size())),
      spread_above_(spread_above_per_worker * static_cast<std::int64_t>(shards.size())) {
  if (shards_.size() > 1 && attach(true)) mode_.store(by_cpu, std::memory_order_relaxed);
}

std::int64_t accept_steering::open_connections() const noexcept {
  std::int64_t open = 0;
  for (const core::live_shard& s : shards_) open += s.connections.load(std::memory_order_relaxed);
  return open;
}

void accept_steering::switch_mode() noexcept {
  const std::lock_guard lock(switching_);
  // Another worker may have switched since the caller looked.
  const int mode = mode_.load(std::memory_order_relaxed);
  const std::int64_t open = open_connections();
  if (mode == off) return;
  const bool want_cpu = mode == by_cpu ? open <= spread_above_ : open <= by_cpu_at_most_;
  if (want_cpu == (mode == by_cpu)) return;
  if (attach(want_cpu)) {
    mode_.store(want_cpu ? by_cpu : by_hash, std::memory_order_relaxed);
  } else {
    mode_.store(off, std::memory_order_relaxed);  // the kernel refused: its hash from now on
  }
}

bool accept_steering::attach(bool cpu) noexcept {
  // The listeners' order in the group is the order they were bound in:
  // worker 0 first. An index at or past the group's size makes the kernel
  // use its hash (reuseport_select_sock falls back to it).
  const auto n = static_cast<std::uint32_t>(shards_.size());
  sock_filter by_cpu_code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_CPU)},
      {BPF_ALU | BPF_MOD | BPF_K, 0, 0, n},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  sock_filter by_hash_code[] = {
      {BPF_RET | BPF_K, 0, 0, 0xffffffffu},
  };
  sock_fprog prog{};
  if (cpu) {
    prog.len = static_cast<unsigned short>(sizeof by_cpu_code / sizeof by_cpu_code[0]);
    prog.filter = by_cpu_code;
  } else {
    prog.len = static_cast<unsigned short>(sizeof by_hash_code / sizeof by_hash_code[0]);
    prog.filter = by_hash_code;
  }
  if (::setsockopt(listener_, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) == 0) return true;
  // The hash program failing leaves the CPU one in place: take it away.
  if (!cpu) ::setsockopt(listener_, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, nullptr, 0);
  return false;
}

}  // namespace gateway::net
