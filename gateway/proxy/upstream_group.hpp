#pragma once
// An upstream group: the members a proxied route balances over, their
// health, and the retry budget.
//
//   member list   "URL[;weight=N],URL..." (core/backend_list.hpp): at
//                 most max_members, weights 1..1000 (default 1)
//   member_state  one per (route, member URL), shared by every worker and
//                 kept across reloads (app::shared_state owns them): the
//                 member's figures for /metrics and its health, all relaxed
//                 atomics, so any thread may read them and every worker
//                 writes them without a lock. Passive health: `eject_after`
//                 consecutive failures (connect refused or timed out, reset
//                 before a response, response timeout, a 5xx answer) eject
//                 the member for eject_base, doubling with each ejection
//                 that follows within eject_max of the last readmission, up
//                 to eject_max; it is readmitted when that time is over.
//                 Active health (health_check.hpp) marks it down and up.
//   balancer      one per worker and route: round robin (smooth weighted,
//                 as nginx does) or least request (power of two choices,
//                 drawn by weight, the one with fewer requests in flight
//                 per unit of weight wins), over the members that are
//                 available. When none is (every member ejected or down),
//                 the panic rule sends traffic to all of them: a wrong
//                 verdict must not turn into a total outage.
//   retry_budget  one per worker and route: a sliding second (ten 100 ms
//                 buckets) of requests and retries; a retry is allowed while
//                 retries stay within `percent` of the requests, or below
//                 `min_per_second`, so a quiet route still retries.
//
// Thread: member_state from any thread; balancer and retry_budget on their
// worker's thread only. Nothing here allocates after construction.
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/backend_list.hpp"

namespace gateway::proxy {

using steady = std::chrono::steady_clock;

inline constexpr std::size_t max_members = core::max_backend_members;

enum class balance_kind { round_robin, least_request };

struct health_policy {
  std::uint32_t eject_after = 5;  // consecutive failures; 0: passive health off
  std::chrono::nanoseconds eject_base = std::chrono::seconds(1);
  std::chrono::nanoseconds eject_max = std::chrono::seconds(30);
};

// How long the ejection number `level` (0 for the first of a run) lasts:
// eject_base * 2^level, at most eject_max.
std::chrono::nanoseconds ejection_interval(const health_policy& p, std::uint32_t level) noexcept;

class member_state {
 public:
  explicit member_state(std::string route, std::string url, std::uint32_t weight)
      : route_(std::move(route)), url_(std::move(url)), weight_(weight) {}
  member_state(const member_state&) = delete;
  member_state& operator=(const member_state&) = delete;

  const std::string& route() const noexcept { return route_; }
  const std::string& url() const noexcept { return url_; }
  std::uint32_t weight() const noexcept { return weight_.load(std::memory_order_relaxed); }
  void set_weight(std::uint32_t w) noexcept { weight_.store(w, std::memory_order_relaxed); }

  // Not ejected and not marked down by active checks.
  bool available(steady::time_point now) const noexcept {
    return !down_.load(std::memory_order_relaxed) && !ejected(now);
  }
  bool ejected(steady::time_point now) const noexcept {
    return ejected_until_.load(std::memory_order_relaxed) > now.time_since_epoch().count();
  }
  bool down() const noexcept { return down_.load(std::memory_order_relaxed); }

  // One exchange that failed. Ejects the member when this makes
  // `eject_after` in a row and `may_eject` (false when it is the last
  // available member of its group); true when it ejected.
  bool record_failure(steady::time_point now, const health_policy& p, bool may_eject) noexcept;
  // One exchange that went well: the failure run ends; the ejection level
  // goes back to 0 once the member has stayed in for eject_max.
  void record_success(steady::time_point now, const health_policy& p) noexcept {
    if (failures_.load(std::memory_order_relaxed) != 0) failures_.store(0, std::memory_order_relaxed);
    if (level_.load(std::memory_order_relaxed) != 0 &&
        now.time_since_epoch().count() >= ejected_until_.load(std::memory_order_relaxed) + p.eject_max.count())
      level_.store(0, std::memory_order_relaxed);
  }
  // Active health's verdict.
  void set_down(bool down) noexcept { down_.store(down, std::memory_order_relaxed); }

  // Figures (any thread).
  std::atomic<std::int64_t> requests{0};    // exchanges started with this member (retries included)
  std::atomic<std::int64_t> errors{0};      // of which failed or answered 5xx
  std::atomic<std::int64_t> latency_ns{0};  // sum, request sent to response head, over the exchanges with a head
  std::atomic<std::int64_t> answered{0};    // exchanges with a response head (latency_ns's count)
  std::atomic<std::int64_t> ejections{0};
  std::atomic<std::int64_t> checks_failed{0};  // active health checks that failed

 private:
  std::string route_;
  std::string url_;
  std::atomic<std::uint32_t> weight_;
  std::atomic<std::uint32_t> failures_{0};
  std::atomic<std::uint32_t> level_{0};
  std::atomic<std::int64_t> ejected_until_{0};  // steady_clock ticks
  std::atomic<bool> down_{false};
};

class balancer {
 public:
  static constexpr std::size_t none = static_cast<std::size_t>(-1);

  balancer(balance_kind kind, std::vector<std::uint32_t> weights, std::uint64_t seed = 0x9e3779b97f4a7c15ull);

  std::size_t size() const noexcept { return weights_.size(); }

  // The member for the next request: among those usable(i) is true for,
  // never `exclude` unless it is the only member; when none is usable, among
  // all (panic). `load(i)` is member i's requests in flight (least request).
  template <class Usable, class Load>
  std::size_t pick(Usable&& usable, Load&& load, std::size_t exclude = none) noexcept {
    const std::size_t n = weights_.size();
    if (n == 1) return 0;
    std::array<std::uint8_t, max_members> cand;
    std::size_t count = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (i != exclude && usable(i)) cand[count++] = static_cast<std::uint8_t>(i);
    if (count == 0) {
      ++panics_;
      for (std::size_t i = 0; i < n; ++i)
        if (i != exclude) cand[count++] = static_cast<std::uint8_t>(i);
    }
    if (count == 1) return cand[0];
    return kind_ == balance_kind::round_robin ? pick_round_robin(cand.data(), count)
                                              : pick_least_request(cand.data(), count, load);
  }

  // Picks that found no usable member (panic), for tests and metrics.
  std::uint64_t panics() const noexcept { return panics_; }

 private:
  std::size_t pick_round_robin(const std::uint8_t* cand, std::size_t count) noexcept;
  std::size_t draw(const std::uint8_t* cand, std::size_t count, std::uint64_t total) noexcept;
  template <class Load>
  std::size_t pick_least_request(const std::uint8_t* cand, std::size_t count, Load& load) noexcept {
    std::uint64_t total = 0;
    for (std::size_t k = 0; k < count; ++k) total += weights_[cand[k]];
    const std::size_t a = draw(cand, count, total);
    std::size_t b = a;
    for (int tries = 0; tries < 4 && b == a; ++tries) b = draw(cand, count, total);
    if (b == a) return a;
    // Fewer in flight per unit of weight: la / wa < lb / wb.
    const auto la = static_cast<std::uint64_t>(load(a)), lb = static_cast<std::uint64_t>(load(b));
    return la * weights_[b] <= lb * weights_[a] ? a : b;
  }
  std::uint64_t next_random() noexcept {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }

  balance_kind kind_;
  std::vector<std::uint32_t> weights_;
  std::vector<std::int64_t> current_;  // smooth weighted round robin
  std::uint64_t rng_;
  std::uint64_t panics_ = 0;
};

class retry_budget {
 public:
  retry_budget(std::uint32_t percent, std::uint32_t min_per_second) noexcept
      : percent_(percent), min_per_second_(min_per_second) {}

  void on_request(steady::time_point now) noexcept {
    advance(now);
    ++requests_[slot_];
  }
  // True (and counted) when one more retry stays within the budget.
  bool try_retry(steady::time_point now) noexcept;

 private:
  static constexpr std::size_t buckets = 10;
  static constexpr std::int64_t bucket_ns = 100'000'000;
  void advance(steady::time_point now) noexcept;

  std::uint32_t percent_;
  std::uint32_t min_per_second_;
  std::array<std::uint32_t, buckets> requests_{};
  std::array<std::uint32_t, buckets> retries_{};
  std::int64_t epoch_ = 0;  // now / bucket_ns of the current bucket
  std::size_t slot_ = 0;
};

}  // namespace gateway::proxy
