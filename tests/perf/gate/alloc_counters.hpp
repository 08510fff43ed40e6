#pragma once
// The page of counters that the allocation-counting preload library
// (alloc_preload.cpp, libperf_alloc_count.so) shares with the gate that
// reads it: the gate creates a file of alloc_counters_size bytes, starts the
// gateway with LD_PRELOAD=libperf_alloc_count.so and
// GATEWAY_PERF_ALLOC_COUNTERS=<that file>, and both map it MAP_SHARED.
//
// Every call of a global operator new in the gateway process (every form;
// not malloc called directly) adds one to `allocations`, every operator
// delete of a non-null pointer one to `deallocations`. When the gate sets
// `trace_budget` to N, the library records the call stacks of the next N
// allocations and writes them, symbolized, to the file named by
// GATEWAY_PERF_ALLOC_TRACE_FILE when the process exits.
// The counters are lock-free atomics, so both processes may touch them at
// any time; read them while the gateway is quiescent for exact figures.
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace gateway::perf {

struct alloc_counters {
  std::atomic<std::uint64_t> allocations;
  std::atomic<std::uint64_t> deallocations;
  std::atomic<std::uint32_t> trace_budget;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free,
              "shared between processes, so the atomics must be lock-free");

inline constexpr std::size_t alloc_counters_size = 4096;
inline constexpr const char* alloc_counters_env = "GATEWAY_PERF_ALLOC_COUNTERS";
inline constexpr const char* alloc_trace_file_env = "GATEWAY_PERF_ALLOC_TRACE_FILE";
inline constexpr const char* alloc_preload_name = "libperf_alloc_count.so";

}  // namespace gateway::perf
