#pragma once
// Stat sets: counters and gauges declared once, in one list per set, from
// which the set's fields and its export (/metrics JSON and Prometheus, with
// the right type: metrics_registry::add_stats) are generated. Adding a
// figure is one row in its set's list plus the code that moves it.
//
// A list is a macro of X(field, type, "metric_name", "help") rows; a set is
// a struct made from it with GATEWAY_STAT_SET:
//
//   #define GATEWAY_EXAMPLE_STATS(X)
//     X(opened, counter, "things_opened", "Things opened")
//     X(open, gauge, "things_open", "Things open now")
//   (with a backslash at the end of each line but the last)
//   struct example_stats {
//     GATEWAY_STAT_SET(example_stats, GATEWAY_EXAMPLE_STATS)
//   };
//
// gives the fields `core::stat opened, open;` and example_stats::fields(),
// their names, types and member pointers. A counter only goes up (exported
// as gateway_NAME_total); a gauge goes up and down (gateway_NAME). Updates
// are relaxed atomics: a set may be written by one thread (a worker's
// shard) or several, and read by any.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gateway::core {

enum class stat_type : std::uint8_t { counter, gauge };

using stat = std::atomic<std::int64_t>;

template <class Set>
struct stat_info {
  std::string_view name;  // [a-z_][a-z0-9_]*, unique across the gateway's sets
  std::string_view help;
  stat_type type;
  stat Set::*field;
};

inline void bump(stat& s, std::int64_t n = 1) noexcept { s.fetch_add(n, std::memory_order_relaxed); }
inline void drop(stat& s, std::int64_t n = 1) noexcept { s.fetch_sub(n, std::memory_order_relaxed); }
inline std::int64_t read(const stat& s) noexcept { return s.load(std::memory_order_relaxed); }

// One field summed over `count` shards of a set.
template <class Set>
std::int64_t sum(stat Set::*field, const Set* shards, std::size_t count) noexcept {
  std::int64_t total = 0;
  for (std::size_t i = 0; i < count; ++i) total += read(shards[i].*field);
  return total;
}

}  // namespace gateway::core

#define GATEWAY_STAT_FIELD(field, type, name, help) ::gateway::core::stat field{0};
#define GATEWAY_STAT_INFO(field, type, name, help) \
  ::gateway::core::stat_info<self_type>{name, help, ::gateway::core::stat_type::type, &self_type::field},
#define GATEWAY_STAT_SET(Set, LIST) \
  using self_type = Set;            \
  LIST(GATEWAY_STAT_FIELD)          \
  static constexpr auto fields() noexcept { return std::array{LIST(GATEWAY_STAT_INFO)}; }
