#pragma once
// The backend's address, parsed once at start-up from "http://HOST[:PORT][/]"
// or "https://HOST[:PORT][/]" (default port 80 and 443; https: the gateway
// speaks TLS to it, upstream_tls.hpp). HOST is a numeric IPv4 address, a
// bracketed IPv6 address or a name; a name
// (e.g. "localhost") is resolved here, once, with the system resolver, and
// never again: the data path only ever sees the endpoint.
#include <asio/ip/tcp.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace gateway::proxy {

struct backend_address {
  asio::ip::tcp::endpoint endpoint;
  std::string authority;  // "HOST:PORT" as written, for a Host header when the client sent none
  std::string host;       // HOST without brackets or port: TLS SNI and certificate name check
  bool tls = false;       // https://
};

// Throws std::invalid_argument naming the problem (bad scheme, missing host,
// bad port, a path, an unresolvable name). Start-up only: it may block on DNS.
backend_address parse_backend_url(std::string_view url);

}  // namespace gateway::proxy
