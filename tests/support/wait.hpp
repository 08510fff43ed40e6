#pragma once
// Waiting on a condition with a deadline, instead of sleeping for a fixed
// time and hoping the condition holds by then: the test goes on as soon as
// it holds, and fails (false) when it still does not at the deadline.
// Called from the test's thread; `pred` must be safe to call from it.
#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

namespace gateway::test {

// Polls `pred` until it holds or `limit` passes; returns whether it held.
// The first polls are a millisecond apart, later ones up to 10 ms (a long
// wait costs little CPU, a short one ends promptly).
inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  auto pause = std::chrono::microseconds(1000);
  while (!pred()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
  return true;
}

}  // namespace gateway::test
