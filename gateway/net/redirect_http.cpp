#include "gateway/net/redirect_http.hpp"

#include "gateway/core/ascii.hpp"

namespace gateway::net {

namespace {

std::string bad_request(std::string_view why) {
  std::string body = std::string(why) + "\n";
  return "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// A reg-name, an IPv4 address or a bracketed IPv6 address (RFC 3986
// section 3.2.2), the characters only: enough that the Location field
// cannot carry anything else.
bool plausible_host(std::string_view h) noexcept {
  if (h.empty() || h.size() > 255) return false;
  if (h.front() == '[') {
    if (h.back() != ']') return false;
    for (char c : h.substr(1, h.size() - 2))
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
        return false;
    return true;
  }
  for (char c : h)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-'))
      return false;
  return true;
}

}  // namespace

std::string redirect_response(std::string_view head, std::uint16_t https_port) {
  const std::size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return bad_request("malformed request line");
  const std::string_view line = head.substr(0, eol);
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return bad_request("malformed request line");
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.empty() || target.front() != '/') return bad_request("expected a target starting with '/'");
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad_request("malformed request target");
  std::string_view host;
  int hosts = 0;
  std::size_t at = eol + 2;
  while (at < head.size()) {
    const std::size_t e = head.find("\r\n", at);
    if (e == std::string_view::npos || e == at) break;
    const std::string_view field = head.substr(at, e - at);
    at = e + 2;
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos || !core::iequals_ascii(field.substr(0, colon), "host")) continue;
    ++hosts;
    host = field.substr(colon + 1);
    while (!host.empty() && (host.front() == ' ' || host.front() == '\t')) host.remove_prefix(1);
    while (!host.empty() && (host.back() == ' ' || host.back() == '\t')) host.remove_suffix(1);
  }
  if (hosts != 1) return bad_request("expected one Host header field");
  // The port after the host (not inside an IPv6 address's brackets) goes.
  const std::size_t bracket = host.rfind(']');
  const std::size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket))
    host = host.substr(0, colon);
  if (!plausible_host(host)) return bad_request("malformed Host header field");
  // Appended piece by piece: g++ 12 misreads "literal" + std::string&& as
  // an overlapping memcpy of any size (-Wrestrict, a known false warning).
  std::string out = "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://";
  out.append(host);
  if (https_port != 443) out.append(":").append(std::to_string(https_port));
  out.append(target).append("\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  return out;
}

}  // namespace gateway::net
