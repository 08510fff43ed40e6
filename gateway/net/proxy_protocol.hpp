#pragma once
// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and
// 2) that an L4 load balancer sends before a connection's first byte of
// HTTP, carrying the address of the client it accepted. With
// --proxy-protocol the connection reads it once (net/connection.cpp) and
// that address becomes the connection's client address.
//
// Parsed strictly, with limits:
//   v1  "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN...\r\n",
//       at most 107 bytes with the CRLF; single spaces; addresses of the
//       family named (TCP4: dotted IPv4, TCP6: IPv6 text); ports 0..65535
//   v2  the 12-byte signature, version 2, command LOCAL or PROXY, then for
//       PROXY: AF_INET or AF_INET6 over STREAM (or AF_UNSPEC: no address);
//       the length at most proxy_v2_max_length, at least the address block;
//       TLVs after the addresses are checked for framing and skipped
// LOCAL (v2), UNKNOWN (v1) and AF_UNSPEC carry no client: the socket's peer
// stays the client.
//
// Pure functions over bytes: no I/O, no allocation, any thread.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/core/ip_address.hpp"

namespace gateway::net {

inline constexpr std::size_t proxy_v1_max_size = 107;
inline constexpr std::size_t proxy_v2_max_length = 1024;  // bytes after the 16-byte fixed part
inline constexpr std::size_t proxy_header_max_size = 16 + proxy_v2_max_length;

struct proxy_header {
  enum class kind : std::uint8_t {
    incomplete,  // a valid beginning: read more (bounded by proxy_header_max_size)
    invalid,     // not a PROXY header, or a malformed one: refuse the connection
    complete,
  };
  kind what = kind::incomplete;
  std::size_t size = 0;      // complete: bytes the header takes (HTTP starts after them)
  bool has_source = false;   // complete: a client address was given
  core::ip_address source;   // the client's address and port, when has_source
  std::uint16_t source_port = 0;
  int version = 0;           // 1 or 2 once recognised
  std::string_view error;    // invalid: why (static text)
};

// Parses the header at the start of `bytes` (which may hold HTTP bytes
// after it). Decides as early as the bytes allow: a first byte that starts
// neither version is invalid at once.
proxy_header parse_proxy_header(std::string_view bytes) noexcept;

}  // namespace gateway::net
