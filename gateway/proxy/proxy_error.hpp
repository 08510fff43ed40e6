#pragma once
// The proxy's outcomes that are not a backend response, as error codes with
// one category (Pingora's ErrorSource idea: the retry decision and the 502/504
// mapping are made from these values, the metrics count them).
#include <system_error>
#include <type_traits>

namespace gateway::proxy {

enum class proxy_errc {
  connect_refused = 1,    // the backend refused or reset the TCP connection (502)
  connect_timeout,        // no TCP connection within the connect timeout (504)
  closed_before_response, // EOF or reset before any response byte (502, or a retry)
  response_timeout,       // no complete response head within the upstream timeout (504)
  bad_response,           // the response head is malformed (502)
  response_head_too_large,// the response head exceeds its cap (502)
  truncated_body,         // the backend closed or reset the connection mid-body
  body_timeout,           // the backend sent nothing for the upstream timeout mid-body
  aborted,                // the upstream socket was closed by shutdown
  tls_handshake_failed,   // the TLS handshake with an https backend failed (502)
  tls_verify_failed,      // an https backend's certificate failed verification (502)
  client_closed,          // the client left before the response head came (499, never sent)
};

const std::error_category& proxy_category() noexcept;

inline std::error_code make_error_code(proxy_errc e) noexcept {
  return {static_cast<int>(e), proxy_category()};
}

// The status a client gets for an error that happens before the response
// head: 504 for the two timeouts, 499 (nginx's "client closed request",
// logged and counted, never sent) for a client that left, 502 for
// everything else.
int status_for(std::error_code ec) noexcept;

}  // namespace gateway::proxy

template <>
struct std::is_error_code_enum<gateway::proxy::proxy_errc> : std::true_type {};
