#pragma once
// The shared rate-limit budget: every gateway instance that names the same
// Redis (--rate-limit-store redis://HOST:PORT[/DB]) counts each client's
// requests in one place, so a client gets `limit` per window in total, not
// per instance.
//
// Data layout (the script in rate_limit_store.cpp): one Redis hash per
// client, "rl:<window in us>:<client>", whose fields are bucket numbers
// (Redis's own clock, TIME, divided by window/60) with the requests allowed
// in that bucket, plus their running sum and the oldest counted bucket (so
// a check is O(1), not a read of 61 fields); the key expires 61 buckets
// after its last allowed request. This is the local table's sliding window
// (rate_limiter.hpp) kept in Redis: a request is allowed when the buckets
// of the last 61 hold fewer than `limit`, so no span of one window ever
// holds more than `limit` allowed requests (a fixed window per key, INCR +
// EXPIRE, would let 2 x limit through across a reset), and the limit-th
// request passes and the next is refused exactly. One clock (Redis's) for
// every instance, and one atomic script run per check (a request, or a
// slice of requests, below), keep that promise across instances however
// requests race between them. API keys are never stored as sent: with
// --rate-limit-store-secret (the same on every instance) they are named by
// their HMAC-SHA-256 under it, so that reading Redis gives no way to test
// guessed keys; without it by their plain SHA-256, which a reader can test
// guesses against offline (README: Running several instances).
//
// Slices: a busy client's requests need not each cost a round trip. A
// worker that sees a client again within a bucket (window/60) of its last
// check asks for a slice of 2, then 4, ... up to 32 requests in one script
// run; Redis counts the whole slice in the current bucket and grants it
// only while the client has at least 64 times the slice left (else 1), and
// the worker allows the rest of the slice itself, without Redis, until it
// is used up or a bucket has passed since the grant (then what is left is
// dropped: never carried across buckets). So the limit is still never
// exceeded in the bucket counts, and the last 64 x 32 requests before the
// limit are decided one by one as without slices; what a slice changes is
// when a request is counted: up to one bucket early (its grant's bucket),
// so as the window slides it may leave the window up to one bucket early.
// A worker's unused slice is a budget other instances cannot use until it
// lapses (at most 31 requests per worker for at most a bucket).
//
// Per worker: one rate_limit_store, with a small pool of hiredis async
// connections driven by the worker's own io_context (an adapter puts
// hiredis's read/write interest onto asio::posix::stream_descriptor
// async_wait), commands pipelined on them (each request's EVALSHA is
// appended to the connection's buffer and written with the others of the
// same loop turn), the script loaded once per connection (SCRIPT LOAD) and
// run with EVALSHA, falling back to EVAL when Redis answers NOSCRIPT.
//
// Bounded waits: start() arms a timer of --rate-limit-store-timeout; a
// request whose answer is not back by then gives up on it (finish() returns
// nothing) and the layer falls back (open: the local table; closed: 503).
// A request never waits for a connection: while none is ready (connecting,
// or down and waiting out its reconnect back-off of 50 ms doubling to 2 s),
// start() fails at once. A connection whose oldest answer is overdue by
// 20 x the timeout (at least 200 ms) is dropped and made again, so a
// stopped Redis costs each request at most the timeout, and only until the
// stall is noticed. In-flight checks are bounded (max_in_flight per worker);
// past that start() fails at once.
//
// Threads: a rate_limit_store is used only on its worker's thread (made on
// any thread, it starts connecting once the worker runs). The health object
// and its stats are shared by every worker and read from any thread.
// Ownership: handlers hold the store (shared_ptr), so it lives until its
// connections are closed; drain() closes them once no request waits and,
// when the worker itself drains, its last connection has gone.
#include <array>
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/core/stats.hpp"
#include "gateway/middleware/rate_limiter.hpp"

struct redisAsyncContext;  // hiredis

namespace gateway::net {
class worker;
}

namespace gateway::middleware {

#define GATEWAY_RATE_LIMIT_STORE_STATS(X)                                                                             \
  X(checks, counter, "rate_limit_store_checks", "Rate-limit decisions made by the shared store (Redis)")              \
  X(timeouts, counter, "rate_limit_store_timeouts", "Requests that gave up on Redis after --rate-limit-store-timeout") \
  X(errors, counter, "rate_limit_store_errors", "Redis answers that were errors or were lost with their connection") \
  X(fallbacks, counter, "rate_limit_store_fallbacks",                                                                  \
    "Requests decided by this instance's own table because Redis was slow or down (failure mode open)")               \
  X(unavailable, counter, "rate_limit_store_unavailable",                                                              \
    "Requests answered 503 because Redis was slow or down (failure mode closed)")                                     \
  X(connects, counter, "rate_limit_store_connects", "Redis connections made ready (first ones and reconnections)")    \
  X(state_changes, counter, "rate_limit_store_state_changes", "Times the store became reachable or unreachable")      \
  X(slice_hits, counter, "rate_limit_store_slice_hits",                                                               \
    "Requests allowed from a slice of the budget this worker took from Redis earlier, without a round trip")          \
  X(up, gauge, "rate_limit_store_up", "1 while at least one Redis connection is ready, else 0")                      \
  X(connections, gauge, "rate_limit_store_connections", "Redis connections ready now, all workers")

struct rate_limit_store_stats {
  GATEWAY_STAT_SET(rate_limit_store_stats, GATEWAY_RATE_LIMIT_STORE_STATS)
};

// The instance's view of the store: reachable while any connection of any
// worker is ready. Writes exactly one line to `log` per change of that state
// (a rare event; the line is short). Any thread.
class rate_limit_store_health {
 public:
  explicit rate_limit_store_health(std::FILE* log = stderr) : log_(log) {}
  void connection_ready(std::string_view url);
  // A ready connection lost (error, stall); `closing`: closed on purpose
  // (shutdown, reload), which is no change of state.
  void connection_lost(std::string_view url, std::string_view failure_mode, bool closing);
  // An attempt that never became ready.
  void connect_failed(std::string_view url, std::string_view failure_mode);
  rate_limit_store_stats stats;

 private:
  enum class state : std::uint8_t { unknown, up, down };
  void set_down(std::string_view url, std::string_view failure_mode);  // mu_ held
  std::mutex mu_;
  int ready_ = 0;
  state state_ = state::unknown;
  std::FILE* log_;
};

struct rate_limit_store_options {
  std::string url;            // as configured, for log lines
  std::string address;        // numeric IP, resolved before the store is made
  std::uint16_t port = 6379;
  unsigned db = 0;
  std::uint32_t limit = 100;
  std::chrono::nanoseconds window = std::chrono::seconds(60);
  std::chrono::nanoseconds timeout = std::chrono::milliseconds(5);
  std::uint32_t connections = 2;
  std::string failure_mode = "open";  // for log lines
  // --rate-limit-store-secret: API keys are named in Redis by their
  // HMAC-SHA-256 under it ("h:" + hex); empty: by their SHA-256 ("k:" + hex).
  std::string key_secret;
};

class rate_limit_store : public std::enable_shared_from_this<rate_limit_store> {
 public:
  // Checks in flight per worker, at most.
  static constexpr std::uint32_t max_in_flight = 1024;

  // Starts connecting once `io` runs. `owner` (may be null in tests) tells
  // drain() when the worker's last connection is gone.
  static std::shared_ptr<rate_limit_store> make(asio::io_context& io, rate_limit_store_options opts,
                                                rate_limit_store_health& health, const net::worker* owner);
  ~rate_limit_store();
  rate_limit_store(const rate_limit_store&) = delete;
  rate_limit_store& operator=(const rate_limit_store&) = delete;

  // Largest slice a worker asks for, and how many clients' slices a worker
  // holds (a table indexed by a hash of the Redis key: a client whose entry
  // another takes over loses its slice, which only costs round trips).
  static constexpr std::uint32_t max_slice = 32;
  static constexpr std::uint32_t slice_table_size = 1024;

  enum class start_result : std::uint8_t {
    waiting,      // the check was sent: await finish(slot)
    decided,      // allowed from this worker's slice: `decided` holds the decision
    unavailable,  // no connection is ready or max_in_flight checks are out: decide without the store
  };
  // Decides or sends the check of one request for `key` (an IP, or "k:" +
  // an API key).
  start_result start(std::string_view key, std::uint32_t& slot, rate_limit_decision& decided) noexcept;
  // The store's decision for `slot`, or nothing when it did not come within
  // the timeout or was an error (counted). Call once per successful start().
  asio::awaitable<std::optional<rate_limit_decision>> finish(std::uint32_t slot);

  // The worker (or a reload) is retiring this store: stop reconnecting and
  // close the connections once nothing waits on them.
  void drain() noexcept;

  rate_limit_store_stats& stats() noexcept { return health_.stats; }
  // Connections ready now (this worker).
  std::uint32_t ready_connections() const noexcept;

  struct connection;
  struct slot;
  struct slice;

 private:
  rate_limit_store(asio::io_context& io, rate_limit_store_options opts, rate_limit_store_health& health,
                   const net::worker* owner);
  void begin();
  void arm_tick();
  void tick();
  void connect(connection& c);
  void drop(connection& c) noexcept;
  void close_all() noexcept;
  bool send(connection& c, slot& s, bool with_script) noexcept;
  slice& slice_for(const char* key, std::size_t len) noexcept;
  void keep_slice(const slot& s, std::uint32_t granted, const rate_limit_decision& d) noexcept;
  void release(slot& s) noexcept;
  void arm_read(connection& c);
  void arm_write(connection& c);

  // hiredis hooks and callbacks (privdata: a connection or a slot).
  static void on_add_read(void* p);
  static void on_del_read(void* p);
  static void on_add_write(void* p);
  static void on_del_write(void* p);
  static void on_cleanup(void* p);
  static void on_script_loaded(::redisAsyncContext* ac, void* reply, void* p);
  static void on_select(::redisAsyncContext* ac, void* reply, void* p);
  static void on_reply(::redisAsyncContext* ac, void* reply, void* p);

  asio::io_context& io_;
  rate_limit_store_options opts_;
  rate_limit_store_health& health_;
  const net::worker* owner_;
  std::string key_prefix_;  // "rl:<window us>:"
  // HMAC-SHA-256's two padded key blocks (RFC 2104) for opts_.key_secret,
  // made once: naming a key then costs two SHA-256 calls, no allocation.
  std::array<unsigned char, 64> hmac_inner_{};
  std::array<unsigned char, 64> hmac_outer_{};
  std::string granularity_;  // microseconds per bucket, as text
  std::string limit_;        // as text
  std::string sha_;          // the script's SHA1 once a SCRIPT LOAD answered
  std::unique_ptr<std::unique_ptr<slot>[]> slots_;
  std::unique_ptr<std::uint32_t[]> free_;  // stack of free slot numbers
  std::uint32_t free_count_ = 0;
  std::unique_ptr<std::unique_ptr<connection>[]> conns_;
  std::unique_ptr<slice[]> slices_;
  std::chrono::microseconds bucket_;  // window / 60: how long a slice may be used
  std::uint32_t next_conn_ = 0;
  asio::steady_timer tick_;
  bool draining_ = false;
  bool closed_ = false;
};

// The script's text (for tests and docs).
std::string_view rate_limit_store_script() noexcept;

}  // namespace gateway::middleware
