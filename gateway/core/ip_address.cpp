#include "gateway/core/ip_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace gateway::core {

namespace {

// inet_pton needs a NUL-terminated string; the longest valid text (an
// IPv6 address with an embedded IPv4 tail) is 45 characters. It is strict
// (no leading zeros in IPv4, no spaces, no zone), which is what we want.
bool to_c_string(std::string_view text, char (&buf)[max_ip_text + 1]) noexcept {
  if (text.empty() || text.size() > max_ip_text) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  return true;
}

bool is_v4_mapped(const std::uint8_t* b) noexcept {
  static constexpr std::uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(b, prefix, sizeof prefix) == 0;
}

// Bits past `prefix` are zero.
bool host_bits_clear(const ip_address& a, unsigned prefix) noexcept {
  const unsigned bits = a.v4 ? 32 : 128;
  for (unsigned i = prefix; i < bits; ++i)
    if (a.bytes[i / 8] & (0x80u >> (i % 8))) return false;
  return true;
}

}  // namespace

ip_address ipv4_from_bytes(const std::uint8_t* b) noexcept {
  ip_address a;
  a.v4 = true;
  std::memcpy(a.bytes.data(), b, 4);
  return a;
}

ip_address ipv6_from_bytes(const std::uint8_t* b) noexcept {
  if (is_v4_mapped(b)) return ipv4_from_bytes(b + 12);
  ip_address a;
  a.v4 = false;
  std::memcpy(a.bytes.data(), b, 16);
  return a;
}

std::optional<ip_address> parse_ipv4(std::string_view text) noexcept {
  char buf[max_ip_text + 1];
  std::uint8_t b[4];
  if (!to_c_string(text, buf) || ::inet_pton(AF_INET, buf, b) != 1) return std::nullopt;
  return ipv4_from_bytes(b);
}

std::optional<ip_address> parse_ipv6(std::string_view text) noexcept {
  char buf[max_ip_text + 1];
  std::uint8_t b[16];
  if (!to_c_string(text, buf) || ::inet_pton(AF_INET6, buf, b) != 1) return std::nullopt;
  return ipv6_from_bytes(b);
}

std::optional<ip_address> parse_ip(std::string_view text) noexcept {
  return text.find(':') == std::string_view::npos ? parse_ipv4(text) : parse_ipv6(text);
}

std::size_t format_ip(const ip_address& a, char* buf) noexcept {
  char tmp[INET6_ADDRSTRLEN];
  if (::inet_ntop(a.v4 ? AF_INET : AF_INET6, a.bytes.data(), tmp, sizeof tmp) == nullptr) return 0;
  const std::size_t n = std::strlen(tmp);
  std::memcpy(buf, tmp, n);
  return n;
}

bool cidr::contains(const ip_address& a) const noexcept {
  if (a.v4 != base.v4) return false;
  const unsigned whole = prefix / 8;
  if (std::memcmp(a.bytes.data(), base.bytes.data(), whole) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xffu << (8 - rest));
  return (a.bytes[whole] & mask) == base.bytes[whole];
}

std::optional<cidr> parse_cidr(std::string_view text, std::string_view& err) noexcept {
  const auto slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  const bool v6_text = addr_text.find(':') != std::string_view::npos;
  // Parsed without unmapping first, so that a mapped range's prefix is
  // counted over 128 bits.
  char buf[max_ip_text + 1];
  std::uint8_t raw[16] = {};
  if (!to_c_string(addr_text, buf) || ::inet_pton(v6_text ? AF_INET6 : AF_INET, buf, raw) != 1) {
    err = "expected an IPv4 or IPv6 address, or a range like 10.0.0.0/8 or fd00::/8";
    return std::nullopt;
  }
  const unsigned max_prefix = v6_text ? 128 : 32;
  unsigned prefix = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    const auto r = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || p.size() > 3 || r.ec != std::errc{} || r.ptr != p.data() + p.size() || prefix > max_prefix ||
        (p.size() > 1 && p[0] == '0')) {
      err = v6_text ? "the prefix length must be a number from 0 to 128" : "the prefix length must be a number from 0 to 32";
      return std::nullopt;
    }
  }
  cidr c;
  if (!v6_text) {
    c.base = ipv4_from_bytes(raw);
  } else if (is_v4_mapped(raw) && prefix >= 96) {
    c.base = ipv4_from_bytes(raw + 12);
    prefix -= 96;
  } else {
    c.base.v4 = false;
    std::memcpy(c.base.bytes.data(), raw, 16);
  }
  c.prefix = static_cast<std::uint8_t>(prefix);
  if (!host_bits_clear(c.base, prefix)) {
    err = "the address has bits set past the prefix length (a range starts at its first address, e.g. 10.0.0.0/8)";
    return std::nullopt;
  }
  return c;
}

bool cidr_set::add(const cidr& c) {
  if (ranges_.size() >= max_size) return false;
  ranges_.push_back(c);
  return true;
}

bool cidr_set::contains(const ip_address& a) const noexcept {
  for (const auto& r : ranges_)
    if (r.contains(a)) return true;
  return false;
}

}  // namespace gateway::core
