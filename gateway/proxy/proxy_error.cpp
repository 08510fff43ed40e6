#include "gateway/proxy/proxy_error.hpp"

#include <string>

namespace gateway::proxy {

namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "proxy"; }
  std::string message(int v) const override {
    switch (static_cast<proxy_errc>(v)) {
      case proxy_errc::connect_refused: return "backend refused the connection";
      case proxy_errc::connect_timeout: return "backend connect timed out";
      case proxy_errc::closed_before_response: return "backend closed the connection before responding";
      case proxy_errc::response_timeout: return "backend response head timed out";
      case proxy_errc::bad_response: return "malformed backend response";
      case proxy_errc::response_head_too_large: return "backend response head too large";
      case proxy_errc::truncated_body: return "backend closed the connection mid-body";
      case proxy_errc::body_timeout: return "backend stalled mid-body";
      case proxy_errc::aborted: return "upstream connection aborted";
      case proxy_errc::tls_handshake_failed: return "TLS handshake with the backend failed";
      case proxy_errc::tls_verify_failed: return "backend TLS certificate verification failed";
      case proxy_errc::client_closed: return "client closed the connection before the response head";
    }
    return "unknown proxy error";
  }
};

}  // namespace

const std::error_category& proxy_category() noexcept {
  static const category c;
  return c;
}

int status_for(std::error_code ec) noexcept {
  if (ec == proxy_errc::connect_timeout || ec == proxy_errc::response_timeout) return 504;
  if (ec == proxy_errc::client_closed) return 499;
  return 502;
}

}  // namespace gateway::proxy
