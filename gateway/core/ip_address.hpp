#pragma once
// IP addresses and CIDR ranges as the gateway compares them: a client's
// address (from the socket, a PROXY protocol header or X-Forwarded-For)
// against the --trusted-proxy ranges. Plain values, no allocation, any
// thread.
//
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket
// reports for an IPv4 peer) is held as the IPv4 address it maps, so
// 10.0.0.0/8 covers ::ffff:10.1.2.3 and both are one client.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace gateway::core {

struct ip_address {
  std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 uses the first 4
  bool v4 = true;
  friend bool operator==(const ip_address&, const ip_address&) = default;
};

// Longest text format_ip writes (INET6_ADDRSTRLEN without the NUL).
inline constexpr std::size_t max_ip_text = 45;

// Parses one bare address: dotted-decimal IPv4 (four parts, no leading
// zeros) or IPv6 text (RFC 4291 section 2.2; no brackets, no zone, no
// port). Anything else, surrounding spaces included, is nullopt.
std::optional<ip_address> parse_ip(std::string_view text) noexcept;

// Exactly one family: parse_ipv4 accepts only IPv4 text, parse_ipv6 only
// IPv6 text (which may be IPv4-mapped: the result is then IPv4). For the
// PROXY protocol, whose TCP4 and TCP6 lines must carry their own family.
std::optional<ip_address> parse_ipv4(std::string_view text) noexcept;
std::optional<ip_address> parse_ipv6(std::string_view text) noexcept;

// From raw network-order bytes (4 or 16 of them).
ip_address ipv4_from_bytes(const std::uint8_t* b) noexcept;
ip_address ipv6_from_bytes(const std::uint8_t* b) noexcept;

// The address's canonical text (RFC 5952 for IPv6) into `buf`, which holds
// at least max_ip_text bytes; returns its length.
std::size_t format_ip(const ip_address& a, char* buf) noexcept;

// An address range: `prefix` leading bits of `base` (the rest are zero).
struct cidr {
  ip_address base;
  std::uint8_t prefix = 0;  // 0..32 (IPv4) or 0..128 (IPv6)
  bool contains(const ip_address& a) const noexcept;
  friend bool operator==(const cidr&, const cidr&) = default;
};

// "10.0.0.0/8", "2001:db8::/32"; a bare address is one host (/32, /128).
// nullopt with `err` set for anything else, and for a base with bits set
// past the prefix ("10.0.0.1/8": probably not what was meant). An
// IPv4-mapped range (::ffff:10.0.0.0/104) becomes its IPv4 range.
std::optional<cidr> parse_cidr(std::string_view text, std::string_view& err) noexcept;

// A small list of ranges, checked in order. Built at start-up (or on a
// reload) and then only read.
class cidr_set {
 public:
  static constexpr std::size_t max_size = 1024;

  // False (and nothing added) when the set already holds max_size ranges.
  bool add(const cidr& c);
  bool contains(const ip_address& a) const noexcept;
  bool empty() const noexcept { return ranges_.empty(); }
  std::size_t size() const noexcept { return ranges_.size(); }
  const std::vector<cidr>& ranges() const noexcept { return ranges_; }
  friend bool operator==(const cidr_set&, const cidr_set&) = default;

 private:
  std::vector<cidr> ranges_;
};

}  // namespace gateway::core
