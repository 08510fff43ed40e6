#pragma once
// --redirect-http PORT: a plain-HTTP listener beside the HTTPS one that
// answers every request with 308 Permanent Redirect (RFC 9110 section
// 15.4.9: the method and body are kept) to the same host and target over
// https, and closes. It reads one request head (up to 8 KiB, within
// --header-timeout, at most 2 s), never a body, and serves at most
// max_redirect_connections at once per listener; the rest are closed.
// Runs on worker 0 (net/worker.hpp), which owns the listener.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gateway::net {

inline constexpr std::size_t max_redirect_head = 8192;
inline constexpr std::size_t max_redirect_connections = 1024;

// The answer to `head` (a whole request head, CRLF CRLF included): 308 to
// https://HOST[:https_port]TARGET (the port left out when it is 443), HOST
// from the Host field without its port; 400 for a head without a valid
// Host or an origin-form target.
std::string redirect_response(std::string_view head, std::uint16_t https_port);

}  // namespace gateway::net
