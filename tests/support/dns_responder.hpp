#pragma once
// A tiny DNS server for tests, on a UDP socket of 127.0.0.1 (port chosen by
// the kernel), answering on a thread of its own until stopped:
//   A     for `name`: the configured IPv4 addresses with the configured TTL
//   AAAA  for `name`: no answer, NOERROR (the name has no IPv6 address)
//   anything else: NXDOMAIN
// set() changes the answer between queries; stop() closes the socket, so a
// resolver pointed at it sees the server gone. Bounded: one datagram at a
// time, a 512-byte answer at most (16 addresses).
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gateway::test {

class dns_responder {
 public:
  dns_responder(std::string name, std::vector<std::string> ipv4, std::uint32_t ttl);
  ~dns_responder();
  dns_responder(const dns_responder&) = delete;
  dns_responder& operator=(const dns_responder&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }  // for --dns-server
  void set(std::vector<std::string> ipv4, std::uint32_t ttl);
  void stop();
  std::int64_t queries() const noexcept { return queries_.load(); }  // A queries for the name

 private:
  void serve(std::stop_token st);

  std::string name_;
  std::mutex mu_;
  std::vector<std::uint32_t> addresses_;  // host order
  std::uint32_t ttl_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<std::int64_t> queries_{0};
  std::jthread thread_;
};

}  // namespace gateway::test
