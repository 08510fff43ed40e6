#include "gateway/net/run_bounded.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace gateway::net {

bool run_bounded(asio::io_context& io, std::chrono::steady_clock::duration limit) {
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  bool stopped = false;
  std::thread watchdog([&] {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, limit, [&] { return finished; })) {
      stopped = true;
      io.stop();
    }
  });
  io.run();
  {
    std::lock_guard lock(mu);
    finished = true;
  }
  cv.notify_one();
  watchdog.join();
  return !stopped;
}

}  // namespace gateway::net
