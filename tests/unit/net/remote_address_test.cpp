#include "gateway/net/connection.hpp"

#include <catch2/catch.hpp>

#include <string>

using gateway::net::format_remote_address;

namespace {

struct formatted {
  std::string address;
  std::string ip;
};

formatted format(const char* ip, unsigned short port, std::size_t cap = 80) {
  asio::ip::tcp::endpoint ep(asio::ip::make_address(ip), port);
  char buf[80];
  std::string_view ip_view;
  const std::size_t n = format_remote_address(ep, buf, cap, ip_view);
  return {std::string(buf, n), std::string(ip_view)};
}

}  // namespace

TEST_CASE("a client's address is written as the seed's RemoteAddr: ADDRESS:PORT, [v6]:PORT", "[unit][net]") {
  auto v4 = format("127.0.0.7", 51234);
  CHECK(v4.address == "127.0.0.7:51234");
  CHECK(v4.ip == "127.0.0.7");
  auto v6 = format("::1", 8080);
  CHECK(v6.address == "[::1]:8080");
  CHECK(v6.ip == "::1");
  auto full = format("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
  CHECK(full.address == "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
  CHECK(format("10.0.0.1", 0).address == "10.0.0.1:0");
  CHECK(format("0.0.0.0", 1).address == "0.0.0.0:1");
  CHECK(format("255.255.255.255", 65535).address == "255.255.255.255:65535");
  CHECK(format("1.20.199.9", 80).ip == "1.20.199.9");
  // A buffer too small cuts the text, never overruns it.
  auto cut = format("192.168.100.200", 1234, 8);
  CHECK(cut.address == "192.168.");
  CHECK(cut.ip == "192.168.");
}

TEST_CASE("a PROXY header's client is written the same way as a socket's peer", "[unit][net]") {
  auto write = [](const char* ip, unsigned short port) {
    char buf[80];
    std::string_view ip_view;
    const std::size_t n = format_remote_address(*gateway::core::parse_ip(ip), port, buf, sizeof buf, ip_view);
    return formatted{std::string(buf, n), std::string(ip_view)};
  };
  auto v4 = write("198.51.100.7", 40001);
  CHECK(v4.address == "198.51.100.7:40001");
  CHECK(v4.ip == "198.51.100.7");
  auto v6 = write("2001:DB8::7", 443);
  CHECK(v6.address == "[2001:db8::7]:443");
  CHECK(v6.ip == "2001:db8::7");
  // An IPv4-mapped source is the IPv4 client (one rate-limit key for both spellings).
  CHECK(write("::ffff:198.51.100.7", 1).address == "198.51.100.7:1");
  // The same text as the socket path gives for the same endpoint.
  CHECK(write("::1", 8080).address == format("::1", 8080).address);
}
