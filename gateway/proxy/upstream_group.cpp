#include "gateway/proxy/upstream_group.hpp"

#include <algorithm>
#include <stdexcept>

namespace gateway::proxy {

std::chrono::nanoseconds ejection_interval(const health_policy& p, std::uint32_t level) noexcept {
  auto d = p.eject_base;
  for (std::uint32_t i = 0; i < level && d < p.eject_max; ++i) d *= 2;
  return std::min(d, p.eject_max);
}

bool member_state::record_failure(steady::time_point now, const health_policy& p, bool may_eject) noexcept {
  errors.fetch_add(1, std::memory_order_relaxed);
  std::uint32_t n = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (p.eject_after == 0 || n < p.eject_after || !may_eject || ejected(now)) return false;
  // Two workers may cross the threshold together: the one that resets the
  // run ejects.
  if (!failures_.compare_exchange_strong(n, 0, std::memory_order_relaxed)) return false;
  const std::uint32_t level = level_.load(std::memory_order_relaxed);
  const auto until = now + ejection_interval(p, level);
  ejected_until_.store(until.time_since_epoch().count(), std::memory_order_relaxed);
  if (ejection_interval(p, level) < p.eject_max) level_.store(level + 1, std::memory_order_relaxed);
  ejections.fetch_add(1, std::memory_order_relaxed);
  return true;
}

balancer::balancer(balance_kind kind, std::vector<std::uint32_t> weights, std::uint64_t seed)
    : kind_(kind), weights_(std::move(weights)), current_(weights_.size(), 0), rng_(seed | 1) {
  if (weights_.empty() || weights_.size() > max_members) throw std::invalid_argument("balancer: bad member count");
}

// Smooth weighted round robin: every candidate gains its weight, the one
// ahead is chosen and pays the candidates' total weight back, so a member
// of weight 3 next to one of weight 1 is chosen 3 times in 4, spread out.
std::size_t balancer::pick_round_robin(const std::uint8_t* cand, std::size_t count) noexcept {
  std::int64_t total = 0;
  std::size_t best = cand[0];
  for (std::size_t k = 0; k < count; ++k) {
    const std::size_t i = cand[k];
    current_[i] += weights_[i];
    total += weights_[i];
    if (current_[i] > current_[best]) best = i;
  }
  current_[best] -= total;
  return best;
}

std::size_t balancer::draw(const std::uint8_t* cand, std::size_t count, std::uint64_t total) noexcept {
  std::uint64_t r = next_random() % total;
  for (std::size_t k = 0; k < count; ++k) {
    if (r < weights_[cand[k]]) return cand[k];
    r -= weights_[cand[k]];
  }
  return cand[count - 1];
}

void retry_budget::advance(steady::time_point now) noexcept {
  const std::int64_t epoch = now.time_since_epoch().count() / bucket_ns;
  if (epoch == epoch_) return;
  const std::int64_t gap = std::min<std::int64_t>(epoch - epoch_, buckets);
  for (std::int64_t i = 0; i < gap; ++i) {
    slot_ = (slot_ + 1) % buckets;
    requests_[slot_] = 0;
    retries_[slot_] = 0;
  }
  epoch_ = epoch;
}

bool retry_budget::try_retry(steady::time_point now) noexcept {
  if (percent_ == 0) return false;
  advance(now);
  std::uint64_t requests = 0, retries = 0;
  for (std::size_t i = 0; i < buckets; ++i) {
    requests += requests_[i];
    retries += retries_[i];
  }
  if (retries >= min_per_second_ && (retries + 1) * 100 > requests * percent_) return false;
  ++retries_[slot_];
  return true;
}

}  // namespace gateway::proxy
