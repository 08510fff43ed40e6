#include "gateway/net/proxy_protocol.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

namespace gateway::net {

namespace {

using kind = proxy_header::kind;

constexpr std::string_view v1_prefix = "PROXY ";
constexpr unsigned char v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

proxy_header invalid(int version, std::string_view why) noexcept {
  proxy_header h;
  h.what = kind::invalid;
  h.version = version;
  h.error = why;
  return h;
}

proxy_header complete(int version, std::size_t size) noexcept {
  proxy_header h;
  h.what = kind::complete;
  h.version = version;
  h.size = size;
  return h;
}

// A decimal port without leading zeros, 0..65535.
bool parse_port(std::string_view s, std::uint16_t& out) noexcept {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  std::uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

// Splits `line` at single spaces into at most `max` fields; false when a
// field is empty (two spaces, a leading or trailing one) or more follow.
template <std::size_t N>
bool split_fields(std::string_view line, std::string_view (&fields)[N], std::size_t& count) noexcept {
  count = 0;
  while (true) {
    const auto sp = line.find(' ');
    const std::string_view f = line.substr(0, sp);
    if (f.empty() || count == N) return false;
    fields[count++] = f;
    if (sp == std::string_view::npos) return true;
    line.remove_prefix(sp + 1);
  }
}

// proxy-protocol.txt section 2.1.
proxy_header parse_v1(std::string_view bytes) noexcept {
  const std::size_t look = std::min(bytes.size(), proxy_v1_max_size);
  const std::size_t prefix_seen = std::min(look, v1_prefix.size());
  if (bytes.substr(0, prefix_seen) != v1_prefix.substr(0, prefix_seen)) return invalid(0, "not a PROXY protocol header");
  const std::size_t lf = bytes.substr(0, look).find('\n');
  if (lf == std::string_view::npos) {
    if (bytes.size() >= proxy_v1_max_size) return invalid(1, "PROXY v1 line longer than 107 bytes");
    return proxy_header{};
  }
  if (lf < v1_prefix.size() + 1 || bytes[lf - 1] != '\r') return invalid(1, "PROXY v1 line not ended by CRLF");
  const std::string_view line = bytes.substr(v1_prefix.size(), lf - 1 - v1_prefix.size());
  for (char c : line)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return invalid(1, "control character in a PROXY v1 line");
  const std::size_t size = lf + 1;

  // "UNKNOWN": the sender could not tell the addresses; the rest of the
  // line is ignored and the connection's own peer is the client.
  if (line == "UNKNOWN" || line.substr(0, 8) == "UNKNOWN ") return complete(1, size);

  std::string_view f[5];
  std::size_t n = 0;
  if (!split_fields(line, f, n) || n != 5) return invalid(1, "PROXY v1 line needs TCP4|TCP6 SRC DST SPORT DPORT");
  std::optional<core::ip_address> src, dst;
  if (f[0] == "TCP4") {
    src = core::parse_ipv4(f[1]);
    dst = core::parse_ipv4(f[2]);
  } else if (f[0] == "TCP6") {
    src = core::parse_ipv6(f[1]);
    dst = core::parse_ipv6(f[2]);
  } else {
    return invalid(1, "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
  }
  if (!src || !dst) return invalid(1, "PROXY v1 address does not match its protocol");
  std::uint16_t sport = 0, dport = 0;
  if (!parse_port(f[3], sport) || !parse_port(f[4], dport)) return invalid(1, "PROXY v1 port is not 0..65535");
  proxy_header h = complete(1, size);
  h.has_source = true;
  h.source = *src;
  h.source_port = sport;
  return h;
}

std::uint16_t be16(const unsigned char* p) noexcept { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

// proxy-protocol.txt section 2.2.
proxy_header parse_v2(std::string_view bytes) noexcept {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t sig_seen = std::min(bytes.size(), sizeof v2_signature);
  if (std::memcmp(b, v2_signature, sig_seen) != 0) return invalid(0, "not a PROXY protocol header");
  if (bytes.size() < 16) return proxy_header{};
  if ((b[12] >> 4) != 2) return invalid(2, "PROXY v2 header with a version other than 2");
  const unsigned command = b[12] & 0x0f;
  if (command > 1) return invalid(2, "PROXY v2 command is neither LOCAL nor PROXY");
  const std::size_t length = be16(b + 14);
  if (length > proxy_v2_max_length) return invalid(2, "PROXY v2 header longer than 1024 bytes");
  const std::size_t size = 16 + length;
  if (bytes.size() < size) return proxy_header{};

  // LOCAL: the balancer's own connection (a health check); the address
  // block, whatever its family, is ignored.
  if (command == 0) return complete(2, size);

  std::size_t block = 0;
  proxy_header h = complete(2, size);
  switch (b[13]) {
    case 0x00:  // AF_UNSPEC: no address to use
      return h;
    case 0x11:  // AF_INET, STREAM: src 4, dst 4, sport 2, dport 2
      block = 12;
      if (length < block) return invalid(2, "PROXY v2 length shorter than its IPv4 addresses");
      h.source = core::ipv4_from_bytes(b + 16);
      h.source_port = be16(b + 24);
      break;
    case 0x21:  // AF_INET6, STREAM: src 16, dst 16, sport 2, dport 2
      block = 36;
      if (length < block) return invalid(2, "PROXY v2 length shorter than its IPv6 addresses");
      h.source = core::ipv6_from_bytes(b + 16);
      h.source_port = be16(b + 48);
      break;
    default:
      return invalid(2, "PROXY v2 family is not TCP over IPv4 or IPv6");
  }
  h.has_source = true;
  // TLVs (type 1 byte, length 2 bytes, value) must tile the rest exactly.
  for (std::size_t pos = 16 + block; pos < size;) {
    if (size - pos < 3) return invalid(2, "PROXY v2 TLV cut short");
    pos += 3 + be16(b + pos + 1);
    if (pos > size) return invalid(2, "PROXY v2 TLV longer than the header");
  }
  return h;
}

}  // namespace

proxy_header parse_proxy_header(std::string_view bytes) noexcept {
  if (bytes.empty()) return proxy_header{};
  if (bytes[0] == 'P') return parse_v1(bytes);
  if (bytes[0] == '\r') return parse_v2(bytes);
  return invalid(0, "not a PROXY protocol header");
}

}  // namespace gateway::net
