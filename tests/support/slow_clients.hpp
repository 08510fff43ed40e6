#pragma once
// Slowloris clients: `count` loopback connections to `port` that each send
// one byte of a request head that never ends, one byte per connection every
// `interval`, on a thread of their own. A connection the gateway answered
// (its header timeout sends 408) or closed is replaced by a new one in the
// same round, so the gateway carries `count` of them until stop() or
// destruction.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

namespace gateway::test {

class slow_clients {
 public:
  slow_clients(std::uint16_t port, std::size_t count, std::chrono::milliseconds interval);
  ~slow_clients();
  slow_clients(const slow_clients&) = delete;
  slow_clients& operator=(const slow_clients&) = delete;

  // Ends the rounds and closes every connection; returns once done.
  void stop();

  // Connections opened, the first ones included.
  std::uint64_t connects() const noexcept { return connects_.load(); }
  // Bytes of head sent over all connections.
  std::uint64_t bytes_sent() const noexcept { return bytes_sent_.load(); }
  // Rounds completed (every connection got its byte once per round).
  std::uint64_t rounds() const noexcept { return rounds_.load(); }

 private:
  void run(std::uint16_t port, std::size_t count, std::chrono::milliseconds interval);

  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> connects_{0};
  std::atomic<std::uint64_t> bytes_sent_{0};
  std::atomic<std::uint64_t> rounds_{0};
  std::thread thread_;
};

}  // namespace gateway::test
