#pragma once
// The request head the backend receives (RFC 9110 section 7.6, RFC 9112).
//
//   METHOD SP path-without-prefix[?query] SP HTTP/1.1 CRLF
//   every client field in order, with the exact name spelling and value,
//   minus hop-by-hop fields (section 7.6.1: Connection and the fields it
//   names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
//   Upgrade) and minus X-Forwarded-Host / X-Forwarded-Proto (ours replace
//   them) and Forwarded (RFC 7239: a client's claim of its own address,
//   scheme and host, which the gateway neither checks nor extends);
//   Content-Length keeps its place but states the size of the body
//   actually forwarded; the X-Forwarded-For fields become one, in the
//   first one's place: their values joined with ", ", then ", <client ip>"
//   (a backend reading only the first field sees the address the gateway
//   added, not a list the client chose)
//   (with upstream_host, the client's Host field carries the backend's
//   authority instead of the client's value, in its place)
//   Host: <backend authority>             only if the client sent no Host
//   Content-Length: <n>                   if the client sent none and the body is
//                                         not empty or came chunked
//   X-Forwarded-For: <client ip>          if the client sent none
//   X-Forwarded-Host: <client Host>       if the client sent a Host
//   X-Forwarded-Proto: http or https      as the client connected
//   CRLF
//
// The body is sent after this head as is (the once-read copy).
#include <string_view>

#include "gateway/core/arena.hpp"
#include "gateway/http/message.hpp"

namespace gateway::proxy {

struct forward_params {
  std::string_view strip_prefix;      // "/api": "/api/x?y" -> "/x?y", "/api" -> "/"
  std::string_view client_ip;         // the peer address of the client connection
  std::string_view backend_authority; // Host for a client that sent none (HTTP/1.0)
  bool upstream_host = false;         // Host: backend_authority always (a route's "host": "upstream")
  bool client_tls = false;            // X-Forwarded-Proto: https (the client came over TLS)
};

// Builds the head in `mem` and returns a view of it (valid until the arena resets).
std::string_view build_request_head(const http::request& req, const forward_params& p, core::arena& mem);

// The request-target sent to the backend (a view into req or a static "/"
// plus the query): exposed for tests.
std::string_view forwarded_path(const http::request& req, std::string_view strip_prefix) noexcept;

}  // namespace gateway::proxy
