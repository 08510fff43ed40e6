#include "gateway/http/query.hpp"

namespace gateway::http {

namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string_view> query_param(std::string_view query, std::string_view name) noexcept {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::string_view form_decode(core::arena& mem, std::string_view v) {
  if (v.find('%') == std::string_view::npos && v.find('+') == std::string_view::npos) return v;
  auto* out = static_cast<char*>(mem.allocate(v.size(), 1));
  std::size_t n = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size() && hex_digit(v[i + 1]) >= 0 && hex_digit(v[i + 2]) >= 0) {
      out[n++] = static_cast<char>(hex_digit(v[i + 1]) * 16 + hex_digit(v[i + 2]));
      i += 2;
    } else if (v[i] == '+') {
      out[n++] = ' ';
    } else {
      out[n++] = v[i];
    }
  }
  return {out, n};
}

}  // namespace gateway::http
