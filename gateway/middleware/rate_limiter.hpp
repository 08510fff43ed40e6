#pragma once
// The rate-limit table: at most `limit` requests per `window` per key (a
// client IP, or an API key when one is presented), shared by every worker.
//
// Algorithm: a fixed window per key, anchored at the key's first request.
// A key's window opens at the first request that finds no open window and
// lasts exactly `window`; inside it the first `limit` requests are allowed
// and every later one is refused (refusals are not counted, so a client that
// keeps hammering is not punished beyond the window). The request arriving at
// `window_start + window` or later opens a new window. So the boundary is
// exact and testable with an injected clock: the 100th request of a window
// passes, the 101st is refused, and the first one at or after the reset
// passes again. Like every fixed window, a client can get up to 2 x limit
// through in a span of one window that straddles a reset; the seed had the
// same property (it cleared its counters every minute).
//
// Memory is bounded whatever the number of distinct clients: the table is
// split into `shards` shards (chosen by a keyed hash of the key), each with a
// fixed number of slots (max_keys / shards) allocated at construction. Keys
// are never stored, only a 128-bit SipHash digest of them (API keys can be
// long, and the table should not hold secrets). When a shard is full, the
// entry whose window has expired is dropped first (it carries no state: its
// next request would open a new window anyway); failing that, the least
// recently used entry is evicted, which forgets its count (counted in
// evictions(): a sustained non-zero rate means max_keys is too small).
//
// Threads: check(), size() and the counters may be called from any thread.
// check() takes one shard's mutex for a few hundred nanoseconds and never
// allocates. Construction throws std::invalid_argument on bad options
// (start-up only).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace gateway::middleware {

struct rate_limit_options {
  std::uint32_t limit = 100;
  std::chrono::nanoseconds window = std::chrono::seconds(60);
  std::size_t max_keys = 100000;
  std::size_t shards = 64;
};

struct rate_limit_decision {
  bool allowed = false;
  std::uint32_t limit = 0;
  // Requests left in the current window after this one (0 when refused).
  std::uint32_t remaining = 0;
  // Time until the key's window resets, rounded up to whole seconds (so a
  // client that waits that long is let through) and at least 1 s: the
  // delay-seconds for RateLimit-Reset (draft-ietf-httpapi-ratelimit-headers)
  // and, when refused, Retry-After (RFC 9110 section 10.2.3).
  std::chrono::seconds reset{0};
};

class rate_limiter {
 public:
  using decision = rate_limit_decision;

  explicit rate_limiter(rate_limit_options opts = {});
  ~rate_limiter();
  rate_limiter(const rate_limiter&) = delete;
  rate_limiter& operator=(const rate_limiter&) = delete;

  // Counts one request for `key` at `now` and says whether it may proceed.
  // `now` comes from the caller (steady_clock in production, chosen time
  // points in tests). Time points slightly out of order between threads are
  // tolerated: a request stamped before its key's window start counts in
  // that window.
  decision check(std::string_view key, std::chrono::steady_clock::time_point now) noexcept;

  // Keys currently tracked (including ones whose window has expired but
  // whose slot has not been reused yet). Never exceeds capacity().
  std::size_t size() const noexcept;
  // The bound on size(): (max_keys / shards) * shards, at most max_keys.
  std::size_t capacity() const noexcept;
  std::size_t shard_count() const noexcept { return shard_count_; }
  // Bytes of table storage (slots and hash index of every shard). Fixed at
  // construction: nothing grows afterwards.
  std::size_t memory_bytes() const noexcept;
  // Live entries evicted because their shard was full (their count is lost).
  std::uint64_t evictions() const noexcept;
  // Entries dropped because their window had expired (no state lost).
  std::uint64_t expirations() const noexcept;

  const rate_limit_options& options() const noexcept { return opts_; }

 private:
  struct shard;

  rate_limit_options opts_;
  std::size_t shard_count_ = 0;
  std::size_t per_shard_ = 0;
  std::uint64_t key0_ = 0;  // SipHash key, random per process
  std::uint64_t key1_ = 0;
  std::unique_ptr<shard[]> shards_;
};

}  // namespace gateway::middleware
