#include "gateway/core/ip_address.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace gateway::core;

namespace {

std::string text(std::string_view in) {
  auto a = parse_ip(in);
  if (!a) return "invalid";
  char buf[max_ip_text];
  return std::string(buf, format_ip(*a, buf));
}

cidr range(std::string_view s) {
  std::string_view err;
  auto c = parse_cidr(s, err);
  if (!c) FAIL("not a range: " << s << ": " << err);
  return *c;
}

bool in(std::string_view range_text, std::string_view address) {
  auto a = parse_ip(address);
  REQUIRE(a);
  return range(range_text).contains(*a);
}

}  // namespace

TEST_CASE("addresses parse strictly and print canonically", "[unit][core]") {
  CHECK(text("192.0.2.1") == "192.0.2.1");
  CHECK(text("0.0.0.0") == "0.0.0.0");
  CHECK(text("2001:DB8:0:0:0:0:0:1") == "2001:db8::1");
  CHECK(text("::1") == "::1");
  CHECK(text("::ffff:192.0.2.1") == "192.0.2.1");  // mapped: the IPv4 client
  for (const char* bad : {"", " 192.0.2.1", "192.0.2.1 ", "192.0.2", "192.0.2.1.5", "256.0.0.1", "01.2.3.4",
                          "192.0.2.1:80", "[::1]", "fe80::1%eth0", "1::2::3", "unknown", "::ffff:01.2.3.4",
                          "1234567890123456789012345678901234567890123456"}) {
    INFO(bad);
    CHECK(text(bad) == "invalid");
  }
  CHECK_FALSE(parse_ipv4("::1"));
  CHECK_FALSE(parse_ipv6("192.0.2.1"));
  CHECK(parse_ipv6("::ffff:192.0.2.1")->v4);
}

TEST_CASE("CIDR ranges: bare addresses are one host, prefixes match bit by bit", "[unit][core]") {
  CHECK(in("10.0.0.0/8", "10.255.1.2"));
  CHECK_FALSE(in("10.0.0.0/8", "11.0.0.0"));
  CHECK(in("192.168.2.0/23", "192.168.3.255"));
  CHECK_FALSE(in("192.168.2.0/23", "192.168.4.0"));
  CHECK_FALSE(in("192.168.2.0/23", "192.168.1.255"));
  CHECK(in("203.0.113.5", "203.0.113.5"));  // a bare address: /32
  CHECK_FALSE(in("203.0.113.5", "203.0.113.4"));
  CHECK(range("203.0.113.5").prefix == 32);
  CHECK(in("0.0.0.0/0", "198.51.100.1"));
  CHECK_FALSE(in("0.0.0.0/0", "::1"));  // families never mix
  CHECK(in("2001:db8::/32", "2001:db8:ffff::1"));
  CHECK_FALSE(in("2001:db8::/32", "2001:db9::1"));
  CHECK(in("::1", "::1"));
  CHECK(range("::1").prefix == 128);
  CHECK_FALSE(in("::1", "::2"));
  CHECK(in("fc00::/7", "fdff::1"));
  CHECK_FALSE(in("fc00::/7", "fe00::1"));
  CHECK_FALSE(in("fd00::/8", "fe00::1"));
  CHECK(in("::/0", "2001:db8::1"));
  // A dual-stack socket's IPv4 peer is matched by the IPv4 range, and a
  // mapped range is its IPv4 range.
  CHECK(in("127.0.0.0/8", "::ffff:127.0.0.1"));
  CHECK(range("::ffff:10.0.0.0/104") == range("10.0.0.0/8"));
}

TEST_CASE("CIDR ranges refuse what is not one, with a reason", "[unit][core]") {
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0/08", "10.0.0/8",
                          "::/129", "10.0.0.1/8", "2001:db8::1/32", "example.com", "10.0.0.0 /8", "/8"}) {
    INFO(bad);
    std::string_view err;
    CHECK_FALSE(parse_cidr(bad, err));
    CHECK_FALSE(err.empty());
  }
  std::string_view err;
  CHECK_FALSE(parse_cidr("10.0.0.1/8", err));
  CHECK(err.find("bits set past the prefix") != std::string_view::npos);
}

TEST_CASE("a CIDR set holds a bounded number of ranges", "[unit][core]") {
  cidr_set s;
  CHECK(s.empty());
  for (std::size_t i = 0; i < cidr_set::max_size; ++i) REQUIRE(s.add(range("10.0.0.0/8")));
  CHECK_FALSE(s.add(range("11.0.0.0/8")));
  CHECK(s.size() == cidr_set::max_size);
  CHECK_FALSE(s.contains(*parse_ip("11.0.0.1")));
  CHECK(s.contains(*parse_ip("10.0.0.1")));
}
