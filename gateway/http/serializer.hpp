#pragma once
// Response head serialisation (RFC 9112 sections 4 and 6).
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/http/message.hpp"

namespace gateway::http {

struct head_options {
  bool keep_alive = true;     // the connection stays open after this response
  bool http10_client = false; // the client spoke HTTP/1.0
  bool head_request = false;  // HEAD: framing headers as for GET, no body
};

// Appends the response head to `out`. Framing is decided here, not by the
// handlers: for a buffered body, Content-Length is computed from the body
// (any Content-Length in res.headers is ignored); for a stream it follows
// res.framing. Connection and Transfer-Encoding in res.headers are never
// copied: they describe a hop, and this is the client's hop. Returns the
// framing actually used for the body.
body_framing write_response_head(std::string& out, const response& res, const head_options& opts);

// "Sun, 06 Nov 1994 08:49:37 GMT" for now, cached per thread per second.
std::string_view http_date() noexcept;

// True for statuses that never carry a body (RFC 9110 sections 6.4.1, 15.3.5, 15.4.5).
constexpr bool status_has_no_body(int status) noexcept {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

}  // namespace gateway::http
