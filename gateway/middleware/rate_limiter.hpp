#pragma once
// The rate-limit table: at most `limit` requests per `window` per key (a
// client IP, or an API key when one is presented), in ANY span of that
// length, shared by every worker.
//
// Algorithm: a sliding window counted in sub-windows. Time is cut into
// buckets of granularity() = window / 60 (rounded up to the nanosecond); each
// key keeps the count of requests it was allowed in each of its last 61
// buckets (the 60 that make up one window plus the current one) and their
// running total. A request is allowed when that total is below `limit`,
// and then counted in the current bucket. Why this holds the promise: any
// span shorter than `window` touches at most 61 consecutive buckets, so when
// the last request allowed in the span was admitted, every earlier request
// of the span was already counted in the total it was checked against,
// which was below `limit`. So no span of one window ever holds more than
// `limit` allowed requests (a fixed window lets 2 x limit through across a
// reset). The price: a request's count lasts until its bucket leaves the
// 61, i.e. between `window` and `window + granularity()` after it. The
// limiter never refuses a request that a sliding log of length
// window + granularity() would allow. The boundary is exact: the limit-th
// request passes, the next one is refused. Refusals are not counted, so a
// client that keeps hammering is not punished beyond its window.
//
// Memory is bounded whatever the number of distinct clients: the table is
// split into shard_count() shards (chosen by a keyed hash of the key), each
// with a fixed number of slots (max_keys / shard_count()), all in one
// anonymous mapping made at construction; pages no key has used yet cost no
// resident memory. shard_count() is `shards`, or fewer for a small table:
// every shard holds at least min_keys_per_shard slots (or all of max_keys),
// because a shard evicts when it is full whatever room the others have, and
// with one slot each, any two keys of 64 that met in a shard (one chance in
// 64 for a pair, near certain among ten keys) evicted each other's counts.
// A slot is a 64-byte header plus 61 counters of 1, 2 or 4 bytes (the
// smallest that holds `limit`), plus 16 to 32 bytes of hash index:
// bytes_per_key() says exactly. Keys are never stored, only a 128-bit
// SipHash digest of them (API keys can be long, and the table should not
// hold secrets). When a shard is full, an entry none of whose requests
// still counts is dropped first (it carries no state); failing that, the
// least recently used entry is evicted, which forgets its counts (counted in
// evictions(): a sustained non-zero rate means max_keys is too small).
//
// Threads: check(), size() and the counters may be called from any thread.
// check() takes one shard's mutex for a few hundred nanoseconds and never
// allocates. Construction throws std::invalid_argument on bad options and
// std::bad_alloc when the mapping cannot be made (start-up only).
#include <array>
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
  // Requests the key may still make now (0 when refused).
  std::uint32_t remaining = 0;
  // Time until the oldest request still counted for the key stops counting,
  // so that `remaining` goes up; when refused, that is when a request would
  // be allowed. Rounded up to whole seconds (a client that waits that long
  // is let through) and at least 1 s: the delay-seconds for RateLimit-Reset
  // (draft-ietf-httpapi-ratelimit-headers) and, when refused, Retry-After
  // (RFC 9110 section 10.2.3).
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
  // tolerated: a request stamped before its key's newest bucket counts in
  // that bucket (so it counts a little longer, never shorter).
  decision check(std::string_view key, std::chrono::steady_clock::time_point now) noexcept;

  // check() in two steps, for a caller that sees one key again and again
  // (a keep-alive connection's address) and keeps its hash: hash(key) is
  // the table's keyed hash of `key` (this table's key, drawn at random at
  // construction: valid for this table only), and check_hashed(hash(key),
  // now) is check(key, now).
  struct hashed_key {
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
  };
  hashed_key hash(std::string_view key) const noexcept;
  decision check_hashed(hashed_key h, std::chrono::steady_clock::time_point now) noexcept;

  // check() for a key its caller has already hashed: `digest` is the
  // 128-bit output of a keyed pseudorandom function under a secret key
  // drawn at random per process (the API keys' digest, api_keys.hpp), so
  // its bits pick the shard and the index position as this table's own
  // hash would. Such digests and check()'s hashes of strings come from
  // independent keys: a digest and a string meet in one entry only by a
  // 128-bit collision.
  decision check_digest(const std::array<unsigned char, 16>& digest,
                        std::chrono::steady_clock::time_point now) noexcept;

  // Keys currently tracked (including ones none of whose requests counts
  // any more but whose slot has not been reused yet). Never exceeds
  // capacity().
  std::size_t size() const noexcept;
  // The bound on size(): (max_keys / shard_count()) * shard_count(), at
  // most max_keys.
  std::size_t capacity() const noexcept;
  // min(shards, max_keys / min_keys_per_shard), at least 1.
  std::size_t shard_count() const noexcept { return shard_count_; }
  static constexpr std::size_t min_keys_per_shard = 64;
  // Bytes of table storage (slots, counters and hash index of every
  // shard), mapped at construction: nothing grows afterwards. Resident only
  // as far as keys have touched it.
  std::size_t memory_bytes() const noexcept;
  // memory_bytes() / capacity(): what one tracked client costs.
  std::size_t bytes_per_key() const noexcept;
  // The length of one bucket: window / 60, rounded up to the nanosecond.
  std::chrono::nanoseconds granularity() const noexcept { return std::chrono::nanoseconds(granularity_); }
  // Live entries evicted because their shard was full (their count is lost).
  std::uint64_t evictions() const noexcept;
  // Entries dropped because none of their requests counted any more (no
  // state lost).
  std::uint64_t expirations() const noexcept;

  const rate_limit_options& options() const noexcept { return opts_; }

 private:
  struct shard;

  rate_limit_options opts_;
  std::size_t shard_count_ = 0;
  std::size_t per_shard_ = 0;
  std::int64_t granularity_ = 0;   // nanoseconds per bucket
  std::size_t counter_bytes_ = 0;  // 1, 2 or 4: the width of a bucket's count
  std::uint64_t key0_ = 0;  // SipHash key, random per process
  std::uint64_t key1_ = 0;
  void* mapping_ = nullptr;  // every shard's storage, zero pages until used
  std::size_t mapping_bytes_ = 0;
  std::unique_ptr<shard[]> shards_;

  // check() once the shard is known, for counters of type Count.
  template <class Count>
  decision check_in(shard& s, std::uint64_t hi, std::uint64_t lo, std::int64_t t) noexcept;
};

}  // namespace gateway::middleware
