#include "gateway/middleware/rate_limiter.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <random>
#include <stdexcept>

#include "gateway/core/siphash.hpp"

namespace gateway::middleware {

namespace {

constexpr std::uint32_t nil = std::numeric_limits<std::uint32_t>::max();

// Client keys are hashed with SipHash-2-4's 128-bit output (core/siphash.hpp)
// under a per-process random key, so that nobody can choose keys that pile
// into one shard or one probe chain; 128 bits so that two clients colliding
// (and sharing a budget) is not a practical concern. `lo` is the digest's
// first half, `hi` its second.
struct digest {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
};

digest siphash128(std::uint64_t k0, std::uint64_t k1, std::string_view in) noexcept {
  const core::siphash_words w = core::siphash128(k0, k1, in);
  return digest{w.second, w.first};
}

struct links {
  std::uint32_t prev = nil;
  std::uint32_t next = nil;
};

// Sub-windows per window, and buckets kept per key: one window plus the
// current bucket (see the header for why the extra one).
constexpr std::int64_t sub_windows = 60;
constexpr std::int64_t ring = sub_windows + 1;

// A key's header, one cache line; its `ring` counters live in a parallel
// array (the counter width depends on the limit). Bucket numbers are
// time / granularity; bucket k's counter is at ring position k % ring,
// kept alongside so the hot path divides nothing.
struct alignas(64) entry {
  std::uint64_t hi;
  std::uint64_t lo;
  std::int64_t newest;      // the bucket the ring ends at; it covers newest - 60 .. newest
  std::int64_t oldest;      // no counted bucket is older (a hint: may lag behind)
  std::int64_t last_admit;  // the bucket of the key's newest counted request
  std::uint32_t total;      // counted requests in the ring
  std::uint8_t newest_pos;  // newest % ring
  std::uint8_t oldest_pos;  // oldest % ring
  links lru;                // most recently used at the head
  links win;                // most recently counted at the head
};
static_assert(sizeof(entry) == 64);

// The hash index maps digest -> slot. Linear probing, load factor <= 1/2.
// `tag` is the low 32 bits of the digest: it gives the home position and
// filters most mismatches without touching the slot. `slot` is the slot
// number plus one, so that a zero page is an empty index.
struct index_entry {
  std::uint32_t tag;
  std::uint32_t slot;
};

struct list {
  std::uint32_t head = nil;
  std::uint32_t tail = nil;
};

std::size_t align_up(std::size_t n, std::size_t a) noexcept { return (n + a - 1) / a * a; }

// Bytes of one shard's storage, its parts 64-byte aligned.
struct shard_layout {
  std::size_t slots_bytes, counters_bytes, index_entries, index_bytes, total;
  shard_layout(std::size_t cap, std::size_t counter_bytes) noexcept
      : slots_bytes(cap * sizeof(entry)),
        counters_bytes(align_up(cap * ring * counter_bytes, 64)),
        index_entries(std::bit_ceil(cap * 2)),
        // Rounded up too: the next shard's slots start right after, and
        // a small table's index is not a whole number of cache lines.
        index_bytes(align_up(index_entries * sizeof(index_entry), 64)),
        total(slots_bytes + counters_bytes + index_bytes) {}
};

}  // namespace

struct rate_limiter::shard {
  // Own cache lines, so that neighbouring shards' locks do not false-share.
  alignas(64) std::mutex mu;
  entry* slots = nullptr;          // `cap` of them; untouched ones are zero pages
  unsigned char* counters = nullptr;  // `ring` counters per slot
  index_entry* index = nullptr;
  std::uint32_t cap = 0;
  std::uint32_t mask = 0;
  std::uint32_t used = 0;
  std::uint32_t fresh = 0;        // slots below it have been used at least once
  std::uint32_t free_head = nil;  // slots given back, chained through lru.next
  list lru;
  list win;
  // Written under `mu`, read without it by size() and the counters.
  std::atomic<std::uint32_t> size{0};
  std::atomic<std::uint64_t> evictions{0};
  std::atomic<std::uint64_t> expirations{0};

  void init(unsigned char* base, std::size_t n, const shard_layout& l) noexcept {
    slots = reinterpret_cast<entry*>(base);
    counters = base + l.slots_bytes;
    index = reinterpret_cast<index_entry*>(base + l.slots_bytes + l.counters_bytes);
    cap = static_cast<std::uint32_t>(n);
    mask = static_cast<std::uint32_t>(l.index_entries - 1);
  }

  template <class Count>
  Count* counts(std::uint32_t i) const noexcept {
    return reinterpret_cast<Count*>(counters) + static_cast<std::size_t>(i) * ring;
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

  std::uint32_t find(std::uint64_t hi, std::uint64_t lo) const noexcept {
    const auto tag = static_cast<std::uint32_t>(lo);
    for (std::uint32_t pos = tag & mask;; pos = (pos + 1) & mask) {
      const index_entry& e = index[pos];
      if (e.slot == 0) return nil;
      if (e.tag == tag && slots[e.slot - 1].lo == lo && slots[e.slot - 1].hi == hi) return e.slot - 1;
    }
  }

  void index_insert(std::uint64_t lo, std::uint32_t slot) noexcept {
    const auto tag = static_cast<std::uint32_t>(lo);
    std::uint32_t pos = tag & mask;
    while (index[pos].slot != 0) pos = (pos + 1) & mask;
    index[pos] = {tag, slot + 1};
  }

  // Backward-shift deletion (Knuth, TAOCP vol. 3, 6.4 Algorithm R): keeps
  // every probe chain intact without tombstones, so lookups stay short no
  // matter how many keys have come and gone.
  void index_erase(std::uint32_t slot) noexcept {
    const auto tag = static_cast<std::uint32_t>(slots[slot].lo);
    std::uint32_t i = tag & mask;
    while (index[i].slot != slot + 1) i = (i + 1) & mask;
    std::uint32_t j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (index[j].slot == 0) break;
      const std::uint32_t home = index[j].tag & mask;
      // Entry j may stay if its home lies cyclically in (i, j].
      const bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
      if (stays) continue;
      index[i] = index[j];
      i = j;
    }
    index[i] = index_entry{0, 0};
  }

  void remove(std::uint32_t i) noexcept {
    index_erase(i);
    unlink<&entry::lru>(lru, i);
    unlink<&entry::win>(win, i);
    slots[i].lru.next = free_head;
    free_head = i;
    --used;
  }

  // A slot for a new key: one given back, else the next never used (so
  // pages no key has reached stay untouched). Only when used < cap.
  std::uint32_t allocate() noexcept {
    std::uint32_t i = free_head;
    if (i != nil) free_head = slots[i].lru.next;
    else i = fresh++;
    slots[i].lru = links{};
    slots[i].win = links{};
    ++used;
    return i;
  }
};

rate_limiter::rate_limiter(rate_limit_options opts) : opts_(opts) {
  if (opts_.window <= std::chrono::nanoseconds::zero())
    throw std::invalid_argument("rate limit window must be positive");
  if (opts_.max_keys == 0) throw std::invalid_argument("rate limit max_keys must be at least 1");
  if (opts_.shards == 0) throw std::invalid_argument("rate limit shards must be at least 1");
  shard_count_ = std::clamp<std::size_t>(opts_.max_keys / min_keys_per_shard, 1, opts_.shards);
  per_shard_ = opts_.max_keys / shard_count_;
  if (per_shard_ > (std::numeric_limits<std::uint32_t>::max() >> 2))
    throw std::invalid_argument("rate limit max_keys per shard too large");
  granularity_ = (opts_.window.count() + sub_windows - 1) / sub_windows;
  counter_bytes_ = opts_.limit <= 0xFF ? 1 : opts_.limit <= 0xFFFF ? 2 : 4;
  std::random_device rd;
  key0_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  key1_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();

  const shard_layout layout(per_shard_, counter_bytes_);
  mapping_bytes_ = layout.total * shard_count_;
  void* p = ::mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  mapping_ = p;
  shards_ = std::make_unique<shard[]>(shard_count_);
  for (std::size_t i = 0; i < shard_count_; ++i)
    shards_[i].init(static_cast<unsigned char*>(mapping_) + i * layout.total, per_shard_, layout);
}

rate_limiter::~rate_limiter() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
}

rate_limiter::decision rate_limiter::check(std::string_view key,
                                           std::chrono::steady_clock::time_point now) noexcept {
  if (opts_.limit == 0) return check_hashed(hashed_key{}, now);
  return check_hashed(hash(key), now);
}

rate_limiter::hashed_key rate_limiter::hash(std::string_view key) const noexcept {
  const digest h = siphash128(key0_, key1_, key);
  return hashed_key{h.hi, h.lo};
}

rate_limiter::decision rate_limiter::check_digest(const std::array<unsigned char, 16>& d,
                                                  std::chrono::steady_clock::time_point now) noexcept {
  // The halves as siphash128() above gives them: `lo` the first eight
  // bytes, `hi` the last, each read little-endian.
  std::uint64_t lo = 0, hi = 0;
  for (int i = 7; i >= 0; --i) {
    lo = (lo << 8) | d[static_cast<std::size_t>(i)];
    hi = (hi << 8) | d[static_cast<std::size_t>(i) + 8];
  }
  return check_hashed(hashed_key{hi, lo}, now);
}

rate_limiter::decision rate_limiter::check_hashed(hashed_key h, std::chrono::steady_clock::time_point now) noexcept {
  const std::uint64_t hi = h.hi, lo = h.lo;
  std::int64_t t = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  if (t < 0) t = 0;
  if (opts_.limit == 0) {
    decision d;
    d.limit = 0;
    const std::int64_t w = opts_.window.count();
    d.reset = std::chrono::seconds(std::max<std::int64_t>(1, w / 1'000'000'000 + (w % 1'000'000'000 != 0)));
    return d;
  }
  // The high half picks the shard, the low half the position in its index:
  // independent bits, so one shard's keys still spread over its index.
  // (Multiply-shift maps it onto [0, shards) without a division.)
  shard& s = shards_[static_cast<std::size_t>(((hi >> 32) * shard_count_) >> 32)];
  switch (counter_bytes_) {
    case 1: return check_in<std::uint8_t>(s, hi, lo, t);
    case 2: return check_in<std::uint16_t>(s, hi, lo, t);
    default: return check_in<std::uint32_t>(s, hi, lo, t);
  }
}

template <class Count>
rate_limiter::decision rate_limiter::check_in(shard& s, std::uint64_t hi, std::uint64_t lo, std::int64_t t) noexcept {
  const std::int64_t g = granularity_;
  auto pos_of = [](std::int64_t bucket) { return static_cast<std::uint8_t>(bucket % ring); };

  std::lock_guard lock(s.mu);
  // Keys whose newest counted request has left its ring sit at the tail of
  // the counted list. Dropping up to two per call keeps the table clean at
  // O(1) cost and makes room before any live entry has to go.
  for (int n = 0; n < 2 && s.win.tail != nil && (s.slots[s.win.tail].last_admit + ring) * g <= t; ++n) {
    s.remove(s.win.tail);
    s.expirations.fetch_add(1, std::memory_order_relaxed);
  }

  std::uint32_t i = s.find(hi, lo);
  Count* c = nullptr;
  const bool new_key = i == nil;
  if (new_key) {
    if (s.used == s.cap) {
      // Full and nothing stale at the tail: forget the least recently used.
      s.remove(s.lru.tail);
      s.evictions.fetch_add(1, std::memory_order_relaxed);
    }
    i = s.allocate();
    entry& e = s.slots[i];
    const std::int64_t b = t / g;
    e.hi = hi;
    e.lo = lo;
    e.newest = e.oldest = e.last_admit = b;
    e.newest_pos = e.oldest_pos = pos_of(b);
    e.total = 0;
    c = s.counts<Count>(i);
    std::memset(c, 0, sizeof(Count) * ring);
    s.index_insert(lo, i);
  } else {
    entry& e = s.slots[i];
    c = s.counts<Count>(i);
    // Still in the newest bucket (or a time point from before it, from a
    // thread that lost a race: it counts there, a little longer): no
    // division, and the lists keep their order, on the common path. The
    // lists order keys by bucket, which is all eviction and expiry need.
    if (t >= (e.newest + 1) * g) {
      // Move the ring forward: the buckets that leave it stop counting.
      const std::int64_t b = t / g;
      if (b - e.newest >= ring) {
        std::memset(c, 0, sizeof(Count) * ring);
        e.total = 0;
        e.newest_pos = pos_of(b);
      } else {
        std::size_t pos = e.newest_pos;
        for (std::int64_t k = e.newest; k < b; ++k) {
          if (++pos == ring) pos = 0;
          e.total -= c[pos];
          c[pos] = 0;
        }
        e.newest_pos = static_cast<std::uint8_t>(pos);
      }
      e.newest = b;
      s.unlink<&entry::lru>(s.lru, i);
      s.push_front<&entry::lru>(s.lru, i);
    }
  }
  if (new_key) s.push_front<&entry::lru>(s.lru, i);

  entry& e = s.slots[i];
  decision d;
  d.limit = opts_.limit;
  if (e.total < opts_.limit) {
    ++c[e.newest_pos];
    if (++e.total == 1) {
      e.oldest = e.newest;
      e.oldest_pos = e.newest_pos;
    }
    if (new_key) {
      s.push_front<&entry::win>(s.win, i);
    } else if (e.last_admit != e.newest) {
      s.unlink<&entry::win>(s.win, i);
      s.push_front<&entry::win>(s.win, i);
    }
    e.last_admit = e.newest;
    d.allowed = true;
  }
  s.size.store(s.used, std::memory_order_relaxed);
  d.remaining = opts_.limit - e.total;

  // The oldest bucket still holding a count leaves the ring at the start of
  // bucket oldest + ring: from then on one more request fits. The scan
  // starts where the last one stopped, so it is short on average.
  if (e.oldest < e.newest - sub_windows) {
    e.oldest = e.newest - sub_windows;
    e.oldest_pos = e.newest_pos == ring - 1 ? 0 : static_cast<std::uint8_t>(e.newest_pos + 1);
  }
  while (e.oldest < e.newest && c[e.oldest_pos] == 0) {
    ++e.oldest;
    e.oldest_pos = e.oldest_pos == ring - 1 ? 0 : static_cast<std::uint8_t>(e.oldest_pos + 1);
  }
  std::int64_t wait = (e.oldest + ring) * g - t;
  if (wait > ring * g) wait = ring * g;  // a time point from before the newest bucket
  constexpr std::int64_t second = 1'000'000'000;
  const std::int64_t secs = wait / second + (wait % second != 0);
  d.reset = std::chrono::seconds(secs < 1 ? 1 : secs);
  return d;
}

std::size_t rate_limiter::size() const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) n += shards_[i].size.load(std::memory_order_relaxed);
  return n;
}

std::size_t rate_limiter::capacity() const noexcept { return per_shard_ * shard_count_; }

std::size_t rate_limiter::memory_bytes() const noexcept { return mapping_bytes_ + sizeof(shard) * shard_count_; }

std::size_t rate_limiter::bytes_per_key() const noexcept { return memory_bytes() / capacity(); }

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
