#include "gateway/http/syntax.hpp"

#include <array>

namespace gateway::http {

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

bool has_token(std::string_view list, std::string_view token) noexcept {
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view item = trim_ows(list.substr(0, comma));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool is_hop_by_hop(std::string_view name, const header_list& fields) noexcept {
  if (is_hop_by_hop_name(name)) return true;
  for (const auto& f : fields)
    if (iequals(f.name, "connection") && has_token(f.value, name)) return true;
  return false;
}

bool is_hop_by_hop_name(std::string_view name) noexcept {
  switch (name.size()) {
    case 2:
      if (iequals(name, "te")) return true;
      break;
    case 7:
      if (iequals(name, "trailer") || iequals(name, "upgrade")) return true;
      break;
    case 10:
      if (iequals(name, "connection") || iequals(name, "keep-alive")) return true;
      break;
    case 16:
      if (iequals(name, "proxy-connection")) return true;
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) return true;
      break;
    default:
      break;
  }
  return false;
}

}  // namespace gateway::http
