#include "gateway/middleware/rate_limiter.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using gateway::middleware::rate_limit_options;
using gateway::middleware::rate_limiter;
using namespace std::chrono_literals;

namespace {

const std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::time_point{} + 1000h;

}  // namespace

TEST_CASE("rate limiter allows exactly the limit within one window", "[unit][middleware][rate_limit]") {
  rate_limiter rl;  // 100 per 60 s
  for (std::uint32_t i = 1; i <= 100; ++i) {
    auto d = rl.check("10.0.0.1", t0 + std::chrono::milliseconds(i * 10));
    REQUIRE(d.allowed);
    REQUIRE(d.limit == 100);
    REQUIRE(d.remaining == 100 - i);
  }
  // The window opened with the first request, at t0 + 10 ms.
  auto refused = rl.check("10.0.0.1", t0 + 59s);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.remaining == 0);
  CHECK(refused.reset == 2s);  // 1.01 s left, rounded up
  CHECK(rl.check("10.0.0.1", t0 + 59s + 10ms).reset == 1s);
  // Refusals are not counted: still refused, still one second to go.
  CHECK_FALSE(rl.check("10.0.0.1", t0 + 59s + 999ms).allowed);
}

TEST_CASE("rate limiter opens a new window exactly when the old one ends", "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 3, .window = 10s});
  for (int i = 0; i < 3; ++i) REQUIRE(rl.check("k", t0).allowed);
  CHECK_FALSE(rl.check("k", t0 + 10s - 1ns).allowed);
  auto d = rl.check("k", t0 + 10s);
  CHECK(d.allowed);
  CHECK(d.remaining == 2);
  CHECK(d.reset == 10s);
  // The new window is anchored at t0 + 10 s.
  CHECK(rl.check("k", t0 + 12s).allowed);
  CHECK(rl.check("k", t0 + 13s).allowed);
  auto refused = rl.check("k", t0 + 19s + 1ms);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.reset == 1s);
  CHECK(rl.check("k", t0 + 20s).allowed);
}

TEST_CASE("rate limiter reports the reset rounded up to whole seconds", "[unit][middleware][rate_limit]") {
  rate_limiter rl(rate_limit_options{.limit = 2, .window = 60s});
  CHECK(rl.check("a", t0).reset == 60s);
  CHECK(rl.check("a", t0 + 500ms).reset == 60s);  // 59.5 s left
  auto refused = rl.check("a", t0 + 30s + 1ms);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.reset == 30s);  // 29.999 s left
  CHECK(rl.check("a", t0 + 59s + 999'999'999ns).reset == 1s);
  // A time point from before the window start (threads racing) stays sane.
  CHECK(rl.check("a", t0 - 5s).reset == 60s);
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
  CHECK(few.shard_count() == 3);
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
