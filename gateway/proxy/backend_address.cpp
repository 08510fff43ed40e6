#include "gateway/proxy/backend_address.hpp"

#include <asio/ip/address.hpp>
#include <charconv>
#include <stdexcept>

namespace gateway::proxy {

namespace {

[[noreturn]] void bad(std::string_view url, std::string_view why) {
  throw std::invalid_argument("backend URL '" + std::string(url) + "': " + std::string(why));
}

}  // namespace

backend_address parse_backend_url(std::string_view url) {
  const bool tls = url.substr(0, 8) == "https://";
  if (!tls && url.substr(0, 7) != "http://") bad(url, "expected http://HOST:PORT or https://HOST:PORT");
  std::string_view rest = url.substr(tls ? 8 : 7);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos)
    bad(url, "only http(s)://HOST:PORT is accepted (no path, query or user info)");
  if (rest.empty()) bad(url, "missing host");

  std::string_view host, port_text;
  bool port_given = false;  // a ':' after the host, so a port must follow
  if (rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) bad(url, "unterminated IPv6 address");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad(url, "expected ':' after the IPv6 address");
      port_text = after.substr(1);
      port_given = true;
    }
  } else {
    // "http://::1:8080" could be ::1 port 8080 or ::1:8080 on the default
    // port (and its Host field would be neither): RFC 3986 section 3.2.2
    // puts an IPv6 address in brackets.
    if (rest.find(':') != rest.rfind(':')) bad(url, "an IPv6 address goes in brackets, like http://[::1]:8080");
    auto colon = rest.rfind(':');
    host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      port_given = true;
    }
  }
  if (host.empty()) bad(url, "missing host");

  std::uint16_t port = tls ? 443 : 80;
  if (port_given) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (port_text.empty() || ec != std::errc{} || ptr != port_text.data() + port_text.size() || value == 0 ||
        value > 65535)
      bad(url, "invalid port");
    port = static_cast<std::uint16_t>(value);
  }

  backend_address out;
  out.authority = std::string(rest);
  out.port = port;
  out.tls = tls;
  std::error_code ec;
  auto address = asio::ip::make_address(std::string(host), ec);
  if (!ec) {
    out.endpoint = asio::ip::tcp::endpoint(address, port);
  } else {
    // A name (RFC 1123 section 2.1 letters, digits, hyphens, dots; '_' as
    // service names use it); a bracketed host must be an IPv6 address.
    if (rest.front() == '[') bad(url, "invalid IPv6 address");
    if (host.size() > 253 || host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
                                 std::string_view::npos)
      bad(url, "invalid host name '" + std::string(host) + "'");
    out.host = std::string(host);
    out.endpoint = asio::ip::tcp::endpoint(asio::ip::tcp::v4(), port);
  }
  return out;
}

}  // namespace gateway::proxy
