#pragma once
// The backend's address, parsed once at start-up from "http://HOST[:PORT][/]"
// or "https://HOST[:PORT][/]" (default port 80 and 443; https: the gateway
// speaks TLS to it, upstream_tls.hpp). HOST is a numeric IPv4 address, a
// bracketed IPv6 address or a name. A numeric one is the endpoint; a name
// (e.g. "localhost") is left in `host` for the resolver (name_resolver.hpp),
// which turns it into one endpoint per address, off the request path: the
// data path only ever sees endpoints.
#include <asio/ip/tcp.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace gateway::proxy {

struct backend_address {
  asio::ip::tcp::endpoint endpoint;  // unset (port only) for a name until resolved
  std::string authority;  // "HOST:PORT" as written, for a Host header when the client sent none
  std::string host;       // the name; empty for a numeric address
  std::uint16_t port = 80;
  bool tls = false;       // https://

  // Whom the backend's certificate must name: the host name, or the numeric
  // address (TLS SNI and the certificate check, upstream_tls.hpp).
  std::string tls_name() const { return host.empty() ? endpoint.address().to_string() : host; }
};

// Throws std::invalid_argument naming the problem (bad scheme, missing host,
// bad port, a path). Never resolves.
backend_address parse_backend_url(std::string_view url);

}  // namespace gateway::proxy
