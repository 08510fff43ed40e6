#include "loadtest/src/histogram.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace {

using loadtest::latency_histogram;

// The exact percentile of a sorted sample, with the same rank rule as the
// histogram (the ceil(p% * n)-th smallest value).
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, double p) {
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void check_percentiles(const latency_histogram& h, std::vector<std::uint64_t> values) {
  std::sort(values.begin(), values.end());
  for (double p : {1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99}) {
    const double want = static_cast<double>(exact_percentile(values, p));
    const double got = static_cast<double>(h.value_at_percentile(p));
    INFO("p" << p << " want " << want << " got " << got);
    // Bucket width is at most 2^-7 of its lower bound; the midpoint is within half of it.
    CHECK(std::abs(got - want) <= want / 256.0 + 1.0);
  }
  CHECK(h.value_at_percentile(100.0) == values.back());
  CHECK(h.value_at_percentile(0.0) == values.front());
  CHECK(h.max() == values.back());
  CHECK(h.min() == values.front());
}

}  // namespace

TEST_CASE("histogram buckets are contiguous and each bucket's width is within the relative error bound",
          "[unit][loadtest]") {
  for (std::size_t i = 1; i < latency_histogram::bucket_count; ++i) {
    INFO("bucket " << i);
    REQUIRE(latency_histogram::bucket_lower(i) ==
            latency_histogram::bucket_lower(i - 1) + latency_histogram::bucket_width(i - 1));
    REQUIRE(latency_histogram::bucket_index(latency_histogram::bucket_lower(i)) == i);
    REQUIRE(latency_histogram::bucket_index(latency_histogram::bucket_lower(i) - 1) == i - 1);
    REQUIRE(latency_histogram::bucket_width(i) * 128 <= std::max<std::uint64_t>(latency_histogram::bucket_lower(i), 128));
  }
  CHECK(latency_histogram::bucket_lower(latency_histogram::bucket_count - 1) <= latency_histogram::highest_tracked_ns);
  CHECK(latency_histogram::bucket_count < 4000);
}

TEST_CASE("histogram percentiles of a uniform distribution are within the relative error", "[unit][loadtest]") {
  auto h = std::make_unique<latency_histogram>();
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::uint64_t> dist(1'000, 50'000'000);  // 1 us .. 50 ms
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    values.push_back(dist(rng));
    h->record(values.back());
  }
  CHECK(h->count() == values.size());
  check_percentiles(*h, values);
}

TEST_CASE("histogram percentiles of a heavy-tailed log-normal distribution are within the relative error",
          "[unit][loadtest]") {
  auto h = std::make_unique<latency_histogram>();
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(std::log(500'000.0), 1.5);  // median 0.5 ms
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    const auto v = std::min<std::uint64_t>(static_cast<std::uint64_t>(dist(rng)) + 1'000, 50'000'000'000ULL);
    values.push_back(v);
    h->record(v);
  }
  check_percentiles(*h, values);
}

TEST_CASE("histogram reports a bimodal distribution's modes at the right percentiles", "[unit][loadtest]") {
  auto h = std::make_unique<latency_histogram>();
  for (int i = 0; i < 990; ++i) h->record(2'000'000);   // 2 ms
  for (int i = 0; i < 10; ++i) h->record(800'000'000);  // 800 ms stall
  CHECK(h->value_at_percentile(50) == Approx(2'000'000).epsilon(1.0 / 256));
  CHECK(h->value_at_percentile(99) == Approx(2'000'000).epsilon(1.0 / 256));
  CHECK(h->value_at_percentile(99.9) == Approx(800'000'000).epsilon(1.0 / 256));
  CHECK(h->max() == 800'000'000);
  CHECK(h->mean() == Approx((990 * 2e6 + 10 * 8e8) / 1000));
}

TEST_CASE("histogram clamps values above 60 s but keeps the exact maximum", "[unit][loadtest]") {
  auto h = std::make_unique<latency_histogram>();
  h->record(5);
  h->record(120'000'000'000ULL);
  CHECK(h->clamped() == 1);
  CHECK(h->max() == 120'000'000'000ULL);
  CHECK(h->value_at_percentile(50) == 5);
  CHECK(h->value_at_percentile(99) == Approx(60e9).epsilon(1.0 / 128));
}

TEST_CASE("histogram merge equals recording everything in one histogram", "[unit][loadtest]") {
  auto a = std::make_unique<latency_histogram>();
  auto b = std::make_unique<latency_histogram>();
  auto all = std::make_unique<latency_histogram>();
  for (std::uint64_t v = 1'000; v < 10'000'000; v = v * 3 / 2) {
    (v % 2 ? *a : *b).record(v);
    all->record(v);
  }
  a->merge(*b);
  CHECK(a->count() == all->count());
  CHECK(a->min() == all->min());
  CHECK(a->max() == all->max());
  for (std::size_t i = 0; i < latency_histogram::bucket_count; ++i)
    REQUIRE(a->count_in_bucket_for_test(i) == all->count_in_bucket_for_test(i));
  for (double p : {50.0, 90.0, 99.0}) CHECK(a->value_at_percentile(p) == all->value_at_percentile(p));
}

TEST_CASE("an empty histogram reports zeros", "[unit][loadtest]") {
  latency_histogram h;
  CHECK(h.count() == 0);
  CHECK(h.value_at_percentile(99) == 0);
  CHECK(h.min() == 0);
  CHECK(h.max() == 0);
  CHECK(h.mean() == 0.0);
}
