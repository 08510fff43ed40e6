#include "gateway/middleware/rate_limiter.hpp"

#include <catch2/catch.hpp>

#include "tests/support/test_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

using gateway::middleware::rate_limit_options;
using gateway::middleware::rate_limiter;
using namespace std::chrono_literals;
namespace test = gateway::test;

namespace {

const std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::time_point{} + 1000h;

}  // namespace

TEST_CASE("rate limiter allows exactly the limit within one window", "[unit][middleware][rate_limit]") {
  rate_limiter rl;  // 100 per 60 s, buckets of 1 s
  REQUIRE(rl.granularity() == 1s);
  for (std::uint32_t i = 1; i <= 100; ++i) {
    auto d = rl.check("10.0.0.1", t0 + std::chrono::milliseconds(i * 10));
    REQUIRE(d.allowed);
    REQUIRE(d.limit == 100);
    REQUIRE(d.remaining == 100 - i);
  }
  // 99 requests counted in the bucket [t0, t0 + 1 s), the 100th (at t0 + 1 s)
  // in the next. The first bucket stops counting at t0 + 61 s.
  auto refused = rl.check("10.0.0.1", t0 + 59s);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.remaining == 0);
  CHECK(refused.reset == 2s);
  CHECK(rl.check("10.0.0.1", t0 + 59s + 10ms).reset == 2s);  // 1.99 s left, rounded up
  // Refusals are not counted: still refused, still under a second to go.
  auto last = rl.check("10.0.0.1", t0 + 61s - 1ns);
  CHECK_FALSE(last.allowed);
  CHECK(last.reset == 1s);
  auto again = rl.check("10.0.0.1", t0 + 61s);
  CHECK(again.allowed);
  CHECK(again.remaining == 98);  // the request at t0 + 1 s and this one count
}

TEST_CASE("rate limiter admits again once the oldest counted request has left its window",
          "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 3, .window = 6s});
  REQUIRE(rl.granularity() == 100ms);
  for (int i = 0; i < 3; ++i) REQUIRE(rl.check("k", t0).allowed);
  CHECK_FALSE(rl.check("k", t0 + 6s - 1ns).allowed);
  // The granularity's price: up to one bucket longer than the window.
  CHECK_FALSE(rl.check("k", t0 + 6s + 99ms).allowed);
  auto d = rl.check("k", t0 + 6s + 100ms);
  CHECK(d.allowed);
  CHECK(d.remaining == 2);
  CHECK(d.reset == 7s);  // its own bucket stops counting at t0 + 12.2 s
  CHECK(rl.check("k", t0 + 8s).allowed);
  CHECK(rl.check("k", t0 + 9s).allowed);
  auto refused = rl.check("k", t0 + 12s + 150ms);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.reset == 1s);
  CHECK(rl.check("k", t0 + 12s + 200ms).allowed);
}

TEST_CASE("rate limiter reports the reset rounded up to whole seconds", "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 2, .window = 60s});
  CHECK(rl.check("a", t0).reset == 61s);           // counted until t0 + 61 s
  CHECK(rl.check("a", t0 + 500ms).reset == 61s);   // 60.5 s left
  auto refused = rl.check("a", t0 + 30s + 1ms);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.reset == 31s);  // 30.999 s left
  CHECK(rl.check("a", t0 + 60s + 999'999'999ns).reset == 1s);
  // A time point from before the newest bucket (threads racing) stays sane.
  CHECK(rl.check("a", t0 - 5s).reset == 61s);
}

TEST_CASE("rate limiter's reset is when a refused client is admitted again", "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 5, .window = 60s});
  for (int i = 0; i < 5; ++i) REQUIRE(rl.check("c", t0 + 500ms + std::chrono::seconds(i)).allowed);
  const auto at = t0 + 10s + 300ms;
  auto refused = rl.check("c", at);
  REQUIRE_FALSE(refused.allowed);
  // The oldest request sits in [t0, t0 + 1 s) and counts until t0 + 61 s:
  // 50.7 s from `at`, said as 51 s.
  CHECK(refused.reset == 51s);
  CHECK_FALSE(rl.check("c", t0 + 61s - 1ns).allowed);
  auto admitted = rl.check("c", at + refused.reset);
  CHECK(admitted.allowed);
  CHECK(admitted.remaining == 0);
  // Then the next oldest, from [t0 + 1 s, t0 + 2 s), until t0 + 62 s.
  auto next = rl.check("c", t0 + 61s + 400ms);
  CHECK_FALSE(next.allowed);
  CHECK(next.reset == 1s);
  CHECK(rl.check("c", t0 + 62s).allowed);
}

TEST_CASE("rate limiter lets no more than the limit through in any window, across a boundary",
          "[unit][middleware][rate_limit]") {
  constexpr std::uint32_t n = 100;
  const auto window = 60s;
  rate_limiter rl(rate_limit_options{.limit = n, .window = window});
  std::vector<std::chrono::steady_clock::time_point> sent, admitted;
  // One request opens the client's first minute, N - 1 come at its end and
  // N at the start of the next minute (a fixed window lets 2N - 1 of these
  // through within one second), then one every 100 ms for two more minutes.
  sent.push_back(t0);
  for (std::uint32_t i = 0; i + 1 < n; ++i) sent.push_back(t0 + 59s + std::chrono::milliseconds(i * 10));
  for (std::uint32_t i = 0; i < n; ++i) sent.push_back(t0 + 60s + std::chrono::milliseconds(i * 10));
  for (auto t = t0 + 61s; t < t0 + 180s; t += 100ms) sent.push_back(t);
  for (auto t : sent)
    if (rl.check("edge", t).allowed) admitted.push_back(t);
  std::size_t worst = 0;
  for (std::size_t i = 0; i < admitted.size(); ++i) {
    std::size_t j = i;
    while (j < admitted.size() && admitted[j] < admitted[i] + window) ++j;
    worst = std::max(worst, j - i);
  }
  CHECK(worst == n);
  // Nothing of the second burst gets through: the first N still count.
  std::size_t in_burst = 0;
  for (auto t : admitted) in_burst += t >= t0 + 60s && t < t0 + 61s;
  CHECK(in_burst == 0);
  // Admitted: the first N; one at t0 + 61 s, when the request at t0 stops
  // counting; N more from t0 + 120 s, as the end-of-minute ones stop.
  CHECK(admitted.size() == 2 * n + 1);
}

TEST_CASE("rate limiter admits exactly between a sliding log of one window and one of a window plus a bucket",
          "[unit][middleware][rate_limit]") {
  // Random arrivals, several limits and windows (one whose granularity is
  // not a whole number of nanoseconds). For every request, with the exact
  // count of admitted requests in the trailing window: at or over the
  // limit -> refused; under the limit even over window + granularity ->
  // admitted.
  struct setup {
    std::uint32_t limit;
    std::chrono::nanoseconds window;
  };
  for (setup su : {setup{1, 6s}, setup{7, 10s}, setup{50, 6s}, setup{300, 60s}, setup{70000, 1s}}) {
    INFO("limit " << su.limit << " window " << su.window.count() << " ns");
    rate_limiter rl(rate_limit_options{.limit = su.limit, .window = su.window});
    const auto g = rl.granularity();
    CHECK(g * 60 >= su.window);
    CHECK(g * 60 < su.window + 60ns);
    std::mt19937_64 rng(su.limit);
    // Bursts and pauses: mean gap a few hundredths of a window per limit.
    std::exponential_distribution<double> gap(1.0);
    std::vector<std::chrono::steady_clock::time_point> admitted;
    std::size_t from_wg = 0, from_w = 0;  // first admitted inside window + g, inside window
    auto t = t0 + std::chrono::nanoseconds(rng() % 1'000'000'000);
    std::size_t yes = 0, no = 0;
    const std::size_t phase = std::max<std::size_t>(500, su.limit * 2u);
    for (std::size_t i = 0; i < phase * 6; ++i) {
      const double scale = (i / phase) % 2 == 0 ? 0.2 : 3.0;  // bursts, then sparse stretches
      t += std::chrono::nanoseconds(
          static_cast<std::int64_t>(gap(rng) * scale * static_cast<double>(su.window.count()) / su.limit));
      while (from_wg < admitted.size() && admitted[from_wg] <= t - su.window - g) ++from_wg;
      while (from_w < admitted.size() && admitted[from_w] <= t - su.window) ++from_w;
      const bool allowed = rl.check("p", t).allowed;
      if (admitted.size() - from_w >= su.limit) REQUIRE_FALSE(allowed);
      if (admitted.size() - from_wg < su.limit) REQUIRE(allowed);
      if (allowed) admitted.push_back(t);
      (allowed ? yes : no) += 1;
    }
    CHECK(yes > 0);
    CHECK(no > 0);
  }
}

TEST_CASE("rate limiter's table is mapped once and resident only as far as keys reach",
          "[unit][middleware][rate_limit]") {
  rate_limit_options opts;
  opts.max_keys = 1'000'000;
  const std::size_t before = test::rss_bytes();
  rate_limiter rl(opts);
  // 100 per minute: 1-byte counters.
  CHECK(rl.bytes_per_key() >= 64 + 61);
  CHECK(rl.bytes_per_key() <= 64 + 61 + 40);
  CHECK(rl.memory_bytes() >= rl.capacity() * (64 + 61));
  const std::size_t built = test::rss_bytes();
  for (int i = 0; i < 1000; ++i) REQUIRE(rl.check("c-" + std::to_string(i), t0).allowed);
  const std::size_t used = test::rss_bytes();
  if (test::rss_checks_apply) {
    CHECK(built < before + 4 * 1024 * 1024);
    CHECK(used < before + 12 * 1024 * 1024);
  }
  CHECK(rl.size() == 1000);
  // Wider counters for larger limits.
  CHECK(rate_limiter(rate_limit_options{.limit = 1000}).bytes_per_key() >= 64 + 122);
  CHECK(rate_limiter(rate_limit_options{.limit = 100000}).bytes_per_key() >= 64 + 244);
}

TEST_CASE("rate limiter keeps keys independent", "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 2, .window = 60s});
  CHECK(rl.check("alice", t0).allowed);
  CHECK(rl.check("alice", t0).allowed);
  CHECK_FALSE(rl.check("alice", t0).allowed);
  CHECK(rl.check("bob", t0).allowed);
  CHECK(rl.check("bob", t0).remaining == 0);
  // Prefixes and long keys are distinct keys too.
  std::string long_key(4096, 'k');
  CHECK(rl.check(long_key, t0).remaining == 1);
  CHECK(rl.check(std::string_view(long_key).substr(0, 4095), t0).remaining == 1);
  CHECK(rl.check("", t0).remaining == 1);
  CHECK(rl.size() == 5);
}

TEST_CASE("rate limiter with a zero limit refuses everything", "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 0, .window = 60s});
  auto d = rl.check("x", t0);
  CHECK_FALSE(d.allowed);
  CHECK(d.reset == 60s);
  CHECK(rl.size() == 0);
}

TEST_CASE("rate limiter rejects nonsensical options at construction", "[unit][middleware][rate_limit]") {
  CHECK_THROWS_AS(rate_limiter(rate_limit_options{.window = 0s}), std::invalid_argument);
  CHECK_THROWS_AS(rate_limiter(rate_limit_options{.max_keys = 0}), std::invalid_argument);
  CHECK_THROWS_AS(rate_limiter(rate_limit_options{.shards = 0}), std::invalid_argument);
  rate_limiter few(rate_limit_options{.max_keys = 3, .shards = 64});
  CHECK(few.capacity() == 3);
  CHECK(few.shard_count() == 1);
}

TEST_CASE("rate limiter keeps every count while a small table has room: no shard of one slot",
          "[unit][middleware][rate_limit]") {
  // The smallest table --rate-limit-max-clients allows. A shard evicts when
  // it is full, whatever room the others have: split into 64 shards of one
  // slot, two of these 64 keys would meet in a shard (one chance in 64 for
  // each pair) and the second would evict the first one's count.
  rate_limiter rl(rate_limit_options{.limit = 1, .window = 60s, .max_keys = 64, .shards = 64});
  CHECK(rl.shard_count() == 1);
  CHECK(rl.capacity() == 64);
  for (int i = 0; i < 64; ++i) REQUIRE(rl.check("client-" + std::to_string(i), t0).allowed);
  CHECK(rl.evictions() == 0);
  CHECK(rl.size() == 64);
  int refused = 0;
  for (int i = 0; i < 64; ++i) refused += rl.check("client-" + std::to_string(i), t0 + 1s).allowed ? 0 : 1;
  CHECK(refused == 64);  // every key kept its count
  // Larger tables still spread over the shards asked for, each at least
  // min_keys_per_shard slots.
  CHECK(rate_limiter(rate_limit_options{.max_keys = 1000, .shards = 64}).shard_count() == 15);
  CHECK(rate_limiter(rate_limit_options{.max_keys = 100000, .shards = 64}).shard_count() == 64);
}

TEST_CASE("rate limiter drops expired entries before evicting live ones", "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 1, .window = 60s, .max_keys = 2, .shards = 1});
  REQUIRE(rl.check("a", t0).allowed);
  REQUIRE(rl.check("b", t0 + 30s).allowed);
  REQUIRE(rl.size() == 2);
  // a's window is over: c takes its place, b's count is kept.
  REQUIRE(rl.check("c", t0 + 61s).allowed);
  CHECK(rl.expirations() == 1);
  CHECK(rl.evictions() == 0);
  CHECK_FALSE(rl.check("b", t0 + 62s).allowed);
  CHECK(rl.size() == 2);
}

TEST_CASE("rate limiter evicts the least recently used key when full", "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 1, .window = 60s, .max_keys = 2, .shards = 1});
  REQUIRE(rl.check("a", t0).allowed);
  REQUIRE(rl.check("b", t0 + 1s).allowed);
  REQUIRE_FALSE(rl.check("a", t0 + 2s).allowed);  // a is now the most recent
  REQUIRE(rl.check("c", t0 + 3s).allowed);        // evicts b
  CHECK(rl.evictions() == 1);
  CHECK(rl.size() == 2);
  CHECK_FALSE(rl.check("a", t0 + 4s).allowed);  // a kept its count
  CHECK_FALSE(rl.check("c", t0 + 5s).allowed);
  CHECK(rl.check("b", t0 + 6s).allowed);  // b was forgotten, so it starts afresh
  CHECK(rl.evictions() == 2);
}

TEST_CASE("rate limiter stays bounded under a million distinct keys", "[unit][middleware][rate_limit]") {
  rate_limit_options opts;
  opts.max_keys = 10000;
  opts.shards = 16;
  rate_limiter rl(opts);
  const std::size_t bytes = rl.memory_bytes();
  CHECK(rl.capacity() <= opts.max_keys);
  CHECK(rl.capacity() == 10000 / 16 * 16);
  std::string key;
  for (std::uint32_t i = 0; i < 1'000'000; ++i) {
    key = "client-";
    key += std::to_string(i);
    // All within one window: nothing expires, so every slot reuse is an eviction.
    REQUIRE(rl.check(key, t0 + std::chrono::microseconds(i)).allowed);
    if (i % 65536 == 0) REQUIRE(rl.memory_bytes() == bytes);  // no growth along the way
  }
  CHECK(rl.size() == rl.capacity());
  CHECK(rl.memory_bytes() == bytes);
  CHECK(rl.evictions() == 1'000'000 - rl.capacity());
  CHECK(rl.expirations() == 0);
  // The newest keys are still tracked with their counts.
  CHECK(rl.check("client-999999", t0 + 2s).remaining == 98);

  // After the window, old entries are recycled as expired, not evicted.
  const auto evicted = rl.evictions();
  for (std::uint32_t i = 0; i < 20000; ++i)
    REQUIRE(rl.check("late-" + std::to_string(i), t0 + 10min + std::chrono::microseconds(i)).allowed);
  CHECK(rl.expirations() == rl.capacity());
  CHECK(rl.evictions() - evicted == 20000 - rl.capacity());
  CHECK(rl.size() == rl.capacity());  // the late keys fill every slot again
  CHECK(rl.memory_bytes() == bytes);
}

TEST_CASE("rate limiter counts a shared key exactly across threads", "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 2500, .window = 60s});
  std::atomic<int> allowed{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        // Each thread also touches its own keys, so shards interleave.
        (void)rl.check("own-" + std::to_string(t) + "-" + std::to_string(i % 50), t0 + 1s);
        if (rl.check("shared", t0 + std::chrono::microseconds(i)).allowed)
          allowed.fetch_add(1, std::memory_order_relaxed);
        else
          refused.fetch_add(1, std::memory_order_relaxed);
      }
    });
  for (auto& th : threads) th.join();
  CHECK(allowed.load() == 2500);
  CHECK(refused.load() == 1500);
  CHECK(rl.size() == 1 + 4 * 50);
  CHECK(rl.evictions() == 0);
}

TEST_CASE("rate limiter counts a digest's requests apart from every string key's", "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 2, .window = 60s});
  std::array<unsigned char, 16> a{}, b{};
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<unsigned char>(i * 7 + 1);
    b[i] = a[i];
  }
  b[15] ^= 0x80;  // differs in the half that picks the shard only
  // The same digest shares one budget; another digest has its own.
  CHECK(rl.check_digest(a, t0).remaining == 1);
  CHECK(rl.check_digest(a, t0).allowed);
  CHECK_FALSE(rl.check_digest(a, t0).allowed);
  CHECK(rl.check_digest(b, t0).remaining == 1);
  b = a;
  b[0] ^= 1;  // and in the half that picks the position only
  CHECK(rl.check_digest(b, t0).remaining == 1);
  // String keys (whatever their bytes, the digest's included) are hashed
  // under the table's own key: a full digest leaves them their budgets.
  const std::string as_text(reinterpret_cast<const char*>(a.data()), a.size());
  CHECK(rl.check(as_text, t0).remaining == 1);
  CHECK(rl.check("10.0.0.1", t0).remaining == 1);
  CHECK(rl.size() == 5);
  // Its window passes like any key's.
  CHECK(rl.check_digest(a, t0 + 62s).allowed);
}
