#pragma once
// In-process HTTP/1.1 peers for the allocation gate: a backend and a client
// made of plain blocking sockets and threads, so that they add nothing to
// the gateway's io_contexts and, with exclude_this_thread(), nothing to the
// allocation counters.
//
// Threads: every thread these classes start excludes itself from the
// allocation count (alloc_counter.hpp). Their public functions are called
// from the test's thread.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace gateway::perf {

// A keep-alive backend on 127.0.0.1:0 that answers every request (a head
// without a body: GETs) with "200 ok", one thread per connection.
// Destruction closes the listener and every connection and joins the threads.
class blocking_backend {
 public:
  blocking_backend();
  ~blocking_backend();
  blocking_backend(const blocking_backend&) = delete;
  blocking_backend& operator=(const blocking_backend&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  std::uint64_t requests() const noexcept { return requests_.load(); }

 private:
  void accept_loop();
  void serve(int fd);

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> requests_{0};
  std::mutex mutex_;  // guards fds_ and threads_
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// `connections` keep-alive client connections to 127.0.0.1:port, opened
// once and reused by every call to run(), so the server sees the same
// connections throughout.
class blocking_clients {
 public:
  blocking_clients(std::uint16_t port, unsigned connections, std::string request);
  ~blocking_clients();
  blocking_clients(const blocking_clients&) = delete;
  blocking_clients& operator=(const blocking_clients&) = delete;

  // Sends `per_connection` requests on every connection at once (one thread
  // each), each waiting for its response. Returns the number of responses
  // that were not a complete "200" (0 when all went well).
  std::uint64_t run(unsigned per_connection);

 private:
  std::vector<int> fds_;
  std::string request_;
};

}  // namespace gateway::perf
