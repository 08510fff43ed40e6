#pragma once
// The clients of the deterministic gates (gate/gates.hpp): keep-alive
// HTTP/1.1 connections made of plain blocking sockets, driven from the
// calling thread (the test's or the gate driver's), so that the gateway's
// figures are the only thing they add to.
#include <cstdint>
#include <string>
#include <vector>

namespace gateway::perf {

// `connections` keep-alive client connections to 127.0.0.1:port, opened
// once and reused by every run, so the server sees the same connections
// throughout.
class blocking_clients {
 public:
  blocking_clients(std::uint16_t port, unsigned connections, std::string request);
  ~blocking_clients();
  blocking_clients(const blocking_clients&) = delete;
  blocking_clients& operator=(const blocking_clients&) = delete;

  // `waves` times: one request written on every connection, then every
  // response read. Each wave puts all connections' requests in flight at
  // once, so the server sees the same burst every time (free-running
  // clients would vary how many overlap); on one connection, requests go
  // one after the other. Returns the number of responses that were not a
  // complete "200" (0 when all went well); a connection that failed stays
  // failed.
  std::uint64_t run_in_waves(unsigned waves);

  // `per_connection` requests on each connection in turn: all of the first
  // connection's, then the second's, ...
  std::uint64_t run_one_at_a_time(unsigned per_connection);

  std::size_t size() const noexcept { return fds_.size(); }

 private:
  std::vector<int> fds_;
  std::string request_;
};

}  // namespace gateway::perf
