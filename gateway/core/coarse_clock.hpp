#pragma once
// Cheap clock readings for deadlines, idle stamps and other times that need
// no better than a few milliseconds. CLOCK_MONOTONIC_COARSE and
// CLOCK_REALTIME_COARSE return the kernel's last tick from the vDSO (about
// 4 ns on the development machine, against 21 ns for the precise clocks),
// lagging the precise clocks by at most one tick (1 to 10 ms, CONFIG_HZ).
//
// The steady reading is on CLOCK_MONOTONIC's timeline, which is what
// libstdc++'s steady_clock reads, so it is returned as a steady_clock time
// point and compares with precise ones: a deadline set from it passes at
// most one tick early by the precise clock, and a sweep that reads the
// coarse clock too sees it on time or one tick late. Request durations
// (metrics, the request log) use the precise clock.
#include <time.h>

#include <chrono>
#include <ctime>

namespace gateway::core {

inline std::chrono::steady_clock::time_point coarse_steady_now() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::steady_clock::time_point(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

// Whole seconds since the epoch, for the Date header.
inline std::time_t coarse_unix_seconds() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec;
}

}  // namespace gateway::core
