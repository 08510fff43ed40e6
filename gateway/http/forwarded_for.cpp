#include "gateway/http/forwarded_for.hpp"

#include "gateway/http/syntax.hpp"

namespace gateway::http {

forwarded_client client_from_forwarded_for(const header_list& headers, const core::ip_address& peer,
                                           const core::cidr_set& trusted) noexcept {
  forwarded_client out{peer, false};
  if (!trusted.contains(peer)) return out;
  // Fields from last to first, and each field's entries from right to left.
  for (const header_field* f = headers.end(); f != headers.begin();) {
    --f;
    if (!iequals(f->name, "x-forwarded-for")) continue;
    std::string_view list = f->value;
    while (!list.empty()) {
      const auto comma = list.rfind(',');
      const std::string_view entry = trim_ows(comma == std::string_view::npos ? list : list.substr(comma + 1));
      list = comma == std::string_view::npos ? std::string_view{} : list.substr(0, comma);
      if (entry.empty()) continue;
      const auto a = core::parse_ip(entry);
      if (!a) return out;
      out = {*a, true};
      if (!trusted.contains(*a)) return out;
    }
  }
  return out;
}

}  // namespace gateway::http
