#pragma once
// A latency histogram with bounded relative error (HdrHistogram's log-linear
// bucketing): values below 2^sub_bucket_bits are counted exactly; above that,
// every power-of-two range [2^m, 2^(m+1)) is split into 2^sub_bucket_bits equal
// buckets, so a bucket's width is at most 2^-sub_bucket_bits (0.78 %) of its
// lower bound and a reported percentile (the bucket's midpoint) is within
// half of that (0.39 %) of a value actually recorded in that bucket.
//
// Values are nanoseconds. The tracked range is 1 us .. 60 s: smaller values are
// still recorded (exactly), larger ones are clamped to 60 s and counted in
// clamped(); min(), max() and mean() are exact over the values as given.
//
// Header-only so the unit tests can use it without linking loadtest_lib.
// Not thread-safe: one writer; copy or merge() to combine threads' histograms.
// record() never allocates (fixed array of buckets, about 30 KiB).
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace loadtest {

namespace histogram_detail {
inline constexpr unsigned sub_bucket_bits = 7;
inline constexpr std::uint64_t sub_bucket_count = std::uint64_t{1} << sub_bucket_bits;

constexpr std::size_t bucket_index(std::uint64_t v) noexcept {
  if (v < sub_bucket_count) return static_cast<std::size_t>(v);
  const unsigned msb = 63U - static_cast<unsigned>(std::countl_zero(v));
  const unsigned shift = msb - sub_bucket_bits;
  return static_cast<std::size_t>((std::uint64_t{shift} + 1) * sub_bucket_count + ((v >> shift) - sub_bucket_count));
}
constexpr std::uint64_t bucket_lower(std::size_t i) noexcept {
  if (i < sub_bucket_count) return i;
  const std::uint64_t shift = i / sub_bucket_count - 1;
  return (sub_bucket_count + i % sub_bucket_count) << shift;
}
constexpr std::uint64_t bucket_width(std::size_t i) noexcept {
  if (i < sub_bucket_count) return 1;
  return std::uint64_t{1} << (i / sub_bucket_count - 1);
}
}  // namespace histogram_detail

class latency_histogram {
 public:
  static constexpr unsigned sub_bucket_bits = histogram_detail::sub_bucket_bits;
  static constexpr std::uint64_t lowest_tracked_ns = 1'000;               // 1 us
  static constexpr std::uint64_t highest_tracked_ns = 60'000'000'000ULL;  // 60 s

  // Bucket of a value (values above highest_tracked_ns map to its bucket).
  static constexpr std::size_t bucket_index(std::uint64_t v) noexcept { return histogram_detail::bucket_index(v); }
  // Smallest value that maps to bucket i.
  static constexpr std::uint64_t bucket_lower(std::size_t i) noexcept { return histogram_detail::bucket_lower(i); }
  // Number of distinct values that map to bucket i.
  static constexpr std::uint64_t bucket_width(std::size_t i) noexcept { return histogram_detail::bucket_width(i); }
  static constexpr std::size_t bucket_count = histogram_detail::bucket_index(highest_tracked_ns) + 1;

  void record(std::uint64_t value_ns) noexcept {
    if (value_ns < min_) min_ = value_ns;
    if (value_ns > max_) max_ = value_ns;
    sum_ += static_cast<double>(value_ns);
    ++count_;
    if (value_ns > highest_tracked_ns) {
      ++clamped_;
      value_ns = highest_tracked_ns;
    }
    ++buckets_[bucket_index(value_ns)];
  }

  void merge(const latency_histogram& other) noexcept {
    for (std::size_t i = 0; i < bucket_count; ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    clamped_ += other.clamped_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  void reset() noexcept { *this = latency_histogram{}; }

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t clamped() const noexcept { return clamped_; }
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }

  // The value at percentile p (0..100): the midpoint of the bucket holding the
  // ceil(p% * count)-th smallest value, clamped to [min(), max()]. 0 when empty;
  // p <= 0 gives min(), p >= 100 gives max().
  std::uint64_t value_at_percentile(double p) const noexcept {
    if (count_ == 0) return 0;
    if (!(p > 0.0)) return min();
    if (p >= 100.0) return max_;
    auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      seen += buckets_[i];
      if (seen >= rank) {
        const std::uint64_t mid = bucket_lower(i) + (bucket_width(i) - 1) / 2;
        return std::clamp(mid, min(), max_);
      }
    }
    return max_;
  }

  std::uint64_t count_in_bucket_for_test(std::size_t i) const noexcept { return buckets_[i]; }

 private:
  std::array<std::uint64_t, bucket_count> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t clamped_ = 0;
  double sum_ = 0.0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
};

}  // namespace loadtest
