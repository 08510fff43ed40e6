#pragma once
// Request metrics: per-worker shards written on the hot path, aggregated by
// a reader (the /metrics handler) into the seed's JSON or Prometheus text.
//
// Hot path: worker i calls shard(i).record(path, status, latency) once per
// request. A shard has a single writer, so every figure is a relaxed atomic
// that the writer bumps with a plain load and store (no lock, no read-modify-
// write instruction, no allocation); readers load the same atomics. A
// snapshot taken while workers record may be skewed by the requests in
// flight between one figure and the next; each exported family is
// internally consistent (the histogram's +Inf bucket equals its _count,
// which is also total_requests).
//
// Paths: requests_by_path / errors_by_path track at most `max_paths`
// distinct paths in total (one table shared by all shards, first come first
// served); any further path, any path longer than `max_path_length` bytes,
// and the literal path "other", are counted under the key "other". Known paths are found in that
// table without a lock or an allocation; a new path takes a mutex once,
// while the table still has room. Callers should pass a bounded vocabulary
// (the matched route pattern, or the path without its query) so that the
// table is not filled by junk URLs.
//
// Latency: a log-linear histogram (32 linear sub-buckets per power of two
// of nanoseconds, up to 2^36 ns, about 68.7 s): a percentile is reported as
// the middle of its bucket, within 1.6 % of the exact value between 1 us
// and 68 s. Prometheus gets a coarser fixed set of `le` buckets (0.5 ms to
// 60 s), counted exactly alongside.
//
// Every other exported figure is registered once, at start-up, before any
// render, through add() or add_stats() (a stat set, core/stats.hpp): a
// counter or a gauge with a name and help text, read by the rendering
// thread. The JSON lists them under "counters" and "gauges"; Prometheus gets
// gateway_NAME_total (TYPE counter) and gateway_NAME (TYPE gauge).
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/stats.hpp"

namespace gateway::middleware {

struct metrics_options {
  std::size_t max_paths = 1000;
  std::size_t max_path_length = 256;
};

// What the layers count per worker besides requests (in metrics_shard).
#define GATEWAY_REQUEST_STATS(X)                                                 \
  X(rate_limited, counter, "rate_limited", "Requests refused with 429 by the rate limiter") \
  X(auth_rejected, counter, "auth_rejected", "Requests refused with 401 by authentication") \
  X(cors_preflights, counter, "cors_preflights", "CORS preflights answered 204 by the gateway") \
  X(cors_refused, counter, "cors_refused", "CORS preflights refused with 403 (origin, method or header not allowed)")

struct request_stats {
  GATEWAY_STAT_SET(request_stats, GATEWAY_REQUEST_STATS)
};

// The log-linear latency histogram's geometry, public for tests.
namespace latency_buckets {
inline constexpr int sub_bits = 5;           // 32 sub-buckets per octave
inline constexpr int min_exponent = 10;      // linear below 2^10 ns (~1 us)
inline constexpr int max_exponent = 36;      // 2^36 ns ~ 68.7 s
inline constexpr std::size_t count =
    (std::size_t{1} << sub_bits) + (max_exponent - min_exponent) * (std::size_t{1} << sub_bits) + 1;
std::size_t index_of(std::int64_t ns) noexcept;
// Lowest value of bucket i, and its width, in ns (the last bucket is open).
std::int64_t lower_bound(std::size_t i) noexcept;
std::int64_t width(std::size_t i) noexcept;
}  // namespace latency_buckets

// Upper bounds of the Prometheus histogram buckets, in ns (+Inf implied).
inline constexpr std::array<std::int64_t, 16> prometheus_bounds_ns = {
    500'000,         1'000'000,      2'500'000,      5'000'000,
    10'000'000,      25'000'000,     50'000'000,     100'000'000,
    250'000'000,     500'000'000,    1'000'000'000,  2'500'000'000,
    5'000'000'000,   10'000'000'000, 30'000'000'000, 60'000'000'000};

// Appends `v` as a Prometheus label value (without quotes): backslash,
// double quote and line feed escaped, invalid UTF-8 replaced by U+FFFD.
void append_prometheus_label_value(std::string& out, std::string_view v);

class metrics_registry;

// Paths known to the registry, shared by all shards. Insert-only.
class path_table {
 public:
  static constexpr std::uint32_t not_found = 0xFFFFFFFF;

  path_table(std::size_t max_paths, std::size_t max_path_length);
  path_table(const path_table&) = delete;
  path_table& operator=(const path_table&) = delete;

  // The path's id in [0, max_paths), or max_paths ("other") when the table
  // is full or the path too long. Any thread; lock-free unless new.
  std::uint32_t id_of(std::string_view path) noexcept;
  std::uint32_t other_id() const noexcept { return static_cast<std::uint32_t>(max_paths_); }
  // Ids [0, size()) are in use; name(id) is stable once size() covers it.
  std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }
  std::string_view name(std::uint32_t id) const noexcept { return *names_[id]; }

 private:
  struct slot {
    std::atomic<std::uint32_t> id{not_found};  // published last (release)
    std::uint64_t hash = 0;
    std::string text;
  };
  std::uint32_t find(std::string_view path, std::uint64_t hash) const noexcept;

  std::size_t max_paths_;
  std::size_t max_path_length_;
  std::size_t mask_;
  std::unique_ptr<slot[]> slots_;
  std::vector<const std::string*> names_;
  std::atomic<std::size_t> size_{0};
  std::mutex insert_mu_;
};

// One worker's figures, on cache lines of its own.
class alignas(64) metrics_shard {
 public:
  // Owner worker only. Never allocates once `path` is known (or the path
  // table is full), never blocks.
  void record(std::string_view path, int status, std::chrono::nanoseconds latency) noexcept;
  // Any thread.
  request_stats& stats() noexcept { return stats_; }

 private:
  friend class metrics_registry;
  using counter = std::atomic<std::uint64_t>;
  static void bump(counter& c, std::uint64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  metrics_shard(path_table& paths, std::size_t max_paths);

  path_table* paths_;
  counter errors_{0};
  counter latency_sum_ns_{0};
  counter latency_max_ns_{0};
  std::array<counter, latency_buckets::count> fine_{};
  std::array<counter, prometheus_bounds_ns.size() + 1> coarse_{};  // last: +Inf only
  request_stats stats_;
  std::unique_ptr<counter[]> requests_by_path_;  // max_paths + 1, last is "other"
  std::unique_ptr<counter[]> errors_by_path_;
};

// A consistent-enough aggregate of all shards (see the top of this file).
struct metrics_snapshot {
  std::uint64_t total_requests = 0;
  std::uint64_t total_errors = 0;
  std::uint64_t latency_sum_ns = 0;
  std::int64_t latency_max_ns = 0;
  std::vector<std::uint64_t> fine;    // latency_buckets::count
  std::vector<std::uint64_t> coarse;  // non-cumulative, prometheus_bounds_ns.size() + 1
  struct path_count {
    std::string_view path;  // points into the registry (valid while it lives)
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;
  };
  std::vector<path_count> paths;  // sorted by path, "other" last; zero rows left out
  // The registered figures, in registration order.
  std::vector<std::pair<std::string_view, std::int64_t>> counters;
  std::vector<std::pair<std::string_view, std::int64_t>> gauges;

  double avg_latency_ms() const noexcept;
  // Nearest-rank percentile, q in (0, 1], in ms; 0 with no requests.
  double percentile_ms(double q) const noexcept;
};

class metrics_registry {
 public:
  explicit metrics_registry(std::size_t workers, metrics_options opts = {});
  metrics_registry(const metrics_registry&) = delete;
  metrics_registry& operator=(const metrics_registry&) = delete;
  ~metrics_registry();

  metrics_shard& shard(std::size_t worker) noexcept { return *shards_[worker]; }
  std::size_t workers() const noexcept { return shards_.size(); }
  std::size_t tracked_paths() const noexcept { return paths_.size(); }

  // Start-up only (not thread-safe against render). `name` must match
  // [a-z_][a-z0-9_]*, be unused by any other figure, and not end in _total,
  // _bucket, _sum, _count or _created. Throws std::invalid_argument
  // otherwise. A callback that throws reads as 0.
  void add(core::stat_type type, std::string name, std::string help, std::function<std::int64_t()> read);

  // Every field of a stat set, summed over `shards` (which must outlive the
  // registry's renders).
  // A family of labelled figures that only its owner can list (the group
  // members'): `json` appends the value of the JSON key `key`, `prometheus`
  // appends complete exposition lines (HELP, TYPE, samples). Start-up only;
  // both run on the rendering thread and must bound what they write.
  void add_section(std::string key, std::function<void(std::string&)> json,
                   std::function<void(std::string&)> prometheus);

  template <class Set>
  void add_stats(std::span<const Set> shards) {
    for (const auto& f : Set::fields()) {
      add(f.type, std::string(f.name), std::string(f.help),
          [shards, field = f.field] { return core::sum(field, shards.data(), shards.size()); });
    }
  }

  metrics_snapshot snapshot() const;

  // {"total_requests":N,"total_errors":N,"avg_latency_ms":X,
  //  "requests_by_path":{path:N,...},"errors_by_path":{path:N,...},
  //  "latency_ms":{"p50":X,"p90":X,"p99":X,"p999":X,"max":X},
  //  "counters":{name:N,...},"gauges":{name:N,...}, then each section's key}
  // errors_by_path lists only paths with errors (as the seed did).
  void render_json(std::string& out) const;
  // Prometheus text exposition format 0.0.4.
  void render_prometheus(std::string& out) const;

 private:
  struct figure {
    core::stat_type type;
    std::string name;
    std::string help;
    std::function<std::int64_t()> read;
  };

  metrics_options opts_;
  path_table paths_;
  std::vector<std::unique_ptr<metrics_shard>> shards_;
  std::vector<figure> figures_;
  struct section {
    std::string key;
    std::function<void(std::string&)> json;
    std::function<void(std::string&)> prometheus;
  };
  std::vector<section> sections_;
};

}  // namespace gateway::middleware
