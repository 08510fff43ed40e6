#include "gateway/middleware/rate_limiter.hpp"

#include <atomic>
#include <bit>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <stdexcept>
#include <vector>

namespace gateway::middleware {

namespace {

constexpr std::uint32_t nil = std::numeric_limits<std::uint32_t>::max();

struct digest {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
};

// SipHash-2-4 with 128-bit output (Aumasson and Bernstein, "SipHash: a fast
// short-input PRF", and the reference implementation's 128-bit variant).
// Keyed with a per-process random key so that nobody can choose keys that
// pile into one shard or one probe chain; 128 bits so that two clients
// colliding (and sharing a budget) is not a practical concern.
inline std::uint64_t rotl(std::uint64_t x, int b) noexcept { return (x << b) | (x >> (64 - b)); }

struct sip_state {
  std::uint64_t v0, v1, v2, v3;
  void round() noexcept {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  }
};

inline std::uint64_t load_le64(const unsigned char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

digest siphash128(std::uint64_t k0, std::uint64_t k1, std::string_view in) noexcept {
  sip_state s{0x736f6d6570736575ULL ^ k0, 0x646f72616e646f6dULL ^ k1,
              0x6c7967656e657261ULL ^ k0, 0x7465646279746573ULL ^ k1};
  s.v1 ^= 0xee;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const std::size_t n = in.size();
  const std::size_t full = n - n % 8;
  for (std::size_t i = 0; i < full; i += 8) {
    std::uint64_t m = load_le64(p + i);
    s.v3 ^= m;
    s.round();
    s.round();
    s.v0 ^= m;
  }
  std::uint64_t b = static_cast<std::uint64_t>(n) << 56;
  for (std::size_t i = full; i < n; ++i) b |= static_cast<std::uint64_t>(p[i]) << (8 * (i - full));
  s.v3 ^= b;
  s.round();
  s.round();
  s.v0 ^= b;
  s.v2 ^= 0xee;
  for (int i = 0; i < 4; ++i) s.round();
  digest d;
  d.lo = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
  s.v1 ^= 0xdd;
  for (int i = 0; i < 4; ++i) s.round();
  d.hi = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
  return d;
}

struct links {
  std::uint32_t prev = nil;
  std::uint32_t next = nil;
};

// 48 bytes per tracked key.
struct entry {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  std::int64_t window_start = 0;  // steady_clock nanoseconds
  std::uint32_t count = 0;
  links lru;  // most recently used at the head
  links win;  // most recently opened window at the head
};

// The hash index maps digest -> slot. Linear probing, load factor <= 1/2.
// `tag` is the low 32 bits of the digest: it gives the home position and
// filters most mismatches without touching the slot.
struct index_entry {
  std::uint32_t tag = 0;
  std::uint32_t slot = nil;
};

struct list {
  std::uint32_t head = nil;
  std::uint32_t tail = nil;
};

}  // namespace

struct rate_limiter::shard {
  // Own cache lines, so that neighbouring shards' locks do not false-share.
  alignas(64) std::mutex mu;
  std::vector<entry> slots;
  std::vector<index_entry> index;
  std::uint32_t mask = 0;
  std::uint32_t used = 0;
  std::uint32_t free_head = nil;  // free slots, chained through lru.next
  list lru;
  list win;
  // Written under `mu`, read without it by size() and the counters.
  std::atomic<std::uint32_t> size{0};
  std::atomic<std::uint64_t> evictions{0};
  std::atomic<std::uint64_t> expirations{0};

  void init(std::size_t cap) {
    slots.assign(cap, entry{});
    index.assign(std::bit_ceil(cap * 2), index_entry{});
    mask = static_cast<std::uint32_t>(index.size() - 1);
    for (std::size_t i = 0; i < cap; ++i)
      slots[i].lru.next = (i + 1 < cap) ? static_cast<std::uint32_t>(i + 1) : nil;
    free_head = cap ? 0 : nil;
  }

  template <links entry::*L>
  void unlink(list& l, std::uint32_t i) noexcept {
    links& k = slots[i].*L;
    if (k.prev != nil) (slots[k.prev].*L).next = k.next; else l.head = k.next;
    if (k.next != nil) (slots[k.next].*L).prev = k.prev; else l.tail = k.prev;
    k = links{};
  }

  template <links entry::*L>
  void push_front(list& l, std::uint32_t i) noexcept {
    links& k = slots[i].*L;
    k.prev = nil;
    k.next = l.head;
    if (l.head != nil) (slots[l.head].*L).prev = i; else l.tail = i;
    l.head = i;
  }

  std::uint32_t find(const digest& d) const noexcept {
    const auto tag = static_cast<std::uint32_t>(d.lo);
    for (std::uint32_t pos = tag & mask;; pos = (pos + 1) & mask) {
      const index_entry& e = index[pos];
      if (e.slot == nil) return nil;
      if (e.tag == tag && slots[e.slot].lo == d.lo && slots[e.slot].hi == d.hi) return e.slot;
    }
  }

  void index_insert(const digest& d, std::uint32_t slot) noexcept {
    const auto tag = static_cast<std::uint32_t>(d.lo);
    std::uint32_t pos = tag & mask;
    while (index[pos].slot != nil) pos = (pos + 1) & mask;
    index[pos] = {tag, slot};
  }

  // Backward-shift deletion (Knuth, TAOCP vol. 3, 6.4 Algorithm R): keeps
  // every probe chain intact without tombstones, so lookups stay short no
  // matter how many keys have come and gone.
  void index_erase(std::uint32_t slot) noexcept {
    const auto tag = static_cast<std::uint32_t>(slots[slot].lo);
    std::uint32_t i = tag & mask;
    while (index[i].slot != slot) i = (i + 1) & mask;
    std::uint32_t j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (index[j].slot == nil) break;
      const std::uint32_t home = index[j].tag & mask;
      // Entry j may stay if its home lies cyclically in (i, j].
      const bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
      if (stays) continue;
      index[i] = index[j];
      i = j;
    }
    index[i] = index_entry{};
  }

  void remove(std::uint32_t i) noexcept {
    index_erase(i);
    unlink<&entry::lru>(lru, i);
    unlink<&entry::win>(win, i);
    slots[i].lru.next = free_head;
    free_head = i;
    --used;
  }

  std::uint32_t allocate() noexcept {
    std::uint32_t i = free_head;
    free_head = slots[i].lru.next;
    slots[i].lru = links{};
    ++used;
    return i;
  }
};

rate_limiter::rate_limiter(rate_limit_options opts) : opts_(opts) {
  if (opts_.window <= std::chrono::nanoseconds::zero())
    throw std::invalid_argument("rate limit window must be positive");
  if (opts_.max_keys == 0) throw std::invalid_argument("rate limit max_keys must be at least 1");
  if (opts_.shards == 0) throw std::invalid_argument("rate limit shards must be at least 1");
  shard_count_ = opts_.shards < opts_.max_keys ? opts_.shards : opts_.max_keys;
  per_shard_ = opts_.max_keys / shard_count_;
  if (per_shard_ > (std::numeric_limits<std::uint32_t>::max() >> 2))
    throw std::invalid_argument("rate limit max_keys per shard too large");
  std::random_device rd;
  key0_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  key1_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  shards_ = std::make_unique<shard[]>(shard_count_);
  for (std::size_t i = 0; i < shard_count_; ++i) shards_[i].init(per_shard_);
}

rate_limiter::~rate_limiter() = default;

rate_limiter::decision rate_limiter::check(std::string_view key,
                                           std::chrono::steady_clock::time_point now) noexcept {
  using std::chrono::nanoseconds;
  const std::int64_t window = opts_.window.count();
  const std::int64_t t = std::chrono::duration_cast<nanoseconds>(now.time_since_epoch()).count();
  constexpr std::int64_t second = 1'000'000'000;
  auto reset_from = [&](std::int64_t remaining_ns) {
    if (remaining_ns > window) remaining_ns = window;  // a time point from before the window start
    std::int64_t s = remaining_ns / second + (remaining_ns % second != 0);
    return std::chrono::seconds(s < 1 ? 1 : s);
  };

  decision d;
  d.limit = opts_.limit;
  if (opts_.limit == 0) {
    d.reset = reset_from(window);
    return d;
  }

  const digest h = siphash128(key0_, key1_, key);
  // The high half picks the shard, the low half the position in its index:
  // independent bits, so one shard's keys still spread over its index.
  shard& s = shards_[static_cast<std::size_t>(h.hi % shard_count_)];
  auto expired = [&](const entry& e) { return t - e.window_start >= window; };

  std::lock_guard lock(s.mu);
  // Expired windows sit at the tail of the window list (every window has the
  // same length). Dropping up to two per call keeps the table clean at O(1)
  // cost and makes room before any live entry has to go.
  for (int n = 0; n < 2 && s.win.tail != nil && expired(s.slots[s.win.tail]); ++n) {
    s.remove(s.win.tail);
    s.expirations.fetch_add(1, std::memory_order_relaxed);
  }

  std::uint32_t i = s.find(h);
  if (i == nil) {
    if (s.used == s.slots.size()) {
      // Full and nothing expired at the tail: forget the least recently used.
      s.remove(s.lru.tail);
      s.evictions.fetch_add(1, std::memory_order_relaxed);
    }
    i = s.allocate();
    entry& e = s.slots[i];
    e.hi = h.hi;
    e.lo = h.lo;
    e.window_start = t;
    e.count = 0;
    s.index_insert(h, i);
    s.push_front<&entry::win>(s.win, i);
  } else {
    entry& e = s.slots[i];
    if (expired(e)) {
      e.window_start = t;
      e.count = 0;
      s.unlink<&entry::win>(s.win, i);
      s.push_front<&entry::win>(s.win, i);
    }
    s.unlink<&entry::lru>(s.lru, i);
  }
  s.push_front<&entry::lru>(s.lru, i);
  s.size.store(s.used, std::memory_order_relaxed);

  entry& e = s.slots[i];
  if (e.count < opts_.limit) {
    ++e.count;
    d.allowed = true;
    d.remaining = opts_.limit - e.count;
  }
  d.reset = reset_from(e.window_start + window - t);
  return d;
}

std::size_t rate_limiter::size() const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) n += shards_[i].size.load(std::memory_order_relaxed);
  return n;
}

std::size_t rate_limiter::capacity() const noexcept { return per_shard_ * shard_count_; }

std::size_t rate_limiter::memory_bytes() const noexcept {
  std::size_t n = sizeof(shard) * shard_count_;
  for (std::size_t i = 0; i < shard_count_; ++i)
    n += shards_[i].slots.capacity() * sizeof(entry) + shards_[i].index.capacity() * sizeof(index_entry);
  return n;
}

std::uint64_t rate_limiter::evictions() const noexcept {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) n += shards_[i].evictions.load(std::memory_order_relaxed);
  return n;
}

std::uint64_t rate_limiter::expirations() const noexcept {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < shard_count_; ++i)
    n += shards_[i].expirations.load(std::memory_order_relaxed);
  return n;
}

}  // namespace gateway::middleware
