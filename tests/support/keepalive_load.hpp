#pragma once
// Client threads, each sending one request over and over on its own
// keep-alive connection until stopped (at most `max_each` times), counting
// the answers and the failures: no answer (the connection is then made
// again) or an answer other than 200.
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace gateway::test {

class keepalive_load {
 public:
  keepalive_load(std::uint16_t port, std::string request, int threads, int max_each);
  ~keepalive_load();
  keepalive_load(const keepalive_load&) = delete;
  keepalive_load& operator=(const keepalive_load&) = delete;

  // Ends the threads (each after its request in flight); returns once done.
  void stop();
  long long done() const noexcept { return done_; }    // answers received
  long long failed() const noexcept { return failed_; }  // no answer, or not 200

 private:
  const std::string request_;
  std::atomic<bool> stop_{false};
  std::atomic<long long> done_{0}, failed_{0};
  std::vector<std::thread> threads_;
};

}  // namespace gateway::test
