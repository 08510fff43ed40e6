#pragma once
// Waiting on a condition with a deadline, instead of sleeping for a fixed
// time and hoping the condition holds by then: the test goes on as soon as
// it holds, and fails (false) when it still does not at the deadline.
// Called from the test's thread; `pred` must be safe to call from it.
#include <chrono>
#include <functional>
#include <thread>

namespace gateway::test {

// Polls `pred` every millisecond until it holds or `limit` passes; returns
// whether it held.
inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace gateway::test
