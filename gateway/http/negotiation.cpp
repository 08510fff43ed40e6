#include "gateway/http/negotiation.hpp"

#include <limits>

#include "gateway/core/ascii.hpp"
#include "gateway/http/syntax.hpp"

namespace gateway::http {

int parse_qvalue(std::string_view v) noexcept {
  if (v.empty() || (v[0] != '0' && v[0] != '1')) return -1;
  const bool one = v[0] == '1';
  if (v.size() == 1) return one ? 1000 : 0;
  if (v[1] != '.' || v.size() > 5) return -1;
  int value = 0;
  int scale = 100;
  for (char c : v.substr(2)) {
    if (c < '0' || c > '9' || (one && c != '0')) return -1;
    value += (c - '0') * scale;
    scale /= 10;
  }
  return one ? 1000 : value;
}

int element_weight(std::string_view params) noexcept {
  int q = 1000;
  while (!params.empty() && q >= 0) {
    const std::size_t next = params.find(';');
    const std::string_view param = params.substr(0, next);
    params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
    const std::size_t eq = param.find('=');
    if (eq == std::string_view::npos) continue;
    if (core::iequals_ascii(trim_ows(param.substr(0, eq)), "q")) q = parse_qvalue(trim_ows(param.substr(eq + 1)));
  }
  return q;
}

std::size_t preferred_media_type(std::string_view accept, std::span<const std::string_view> offers) noexcept {
  constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
  if (offers.empty()) return npos;
  if (trim_ows(accept).empty()) return 0;

  // Per offer (at most a handful): the weight of the most specific range
  // that matched it so far, that range's specificity and position.
  constexpr std::size_t max_offers = 8;
  struct match {
    int q = -1;            // -1: no range matched
    int specificity = -1;  // 0 */*, 1 type/*, 2 type/subtype
    std::size_t position = 0;
  };
  match best[max_offers];
  const std::size_t n = offers.size() < max_offers ? offers.size() : max_offers;

  std::size_t position = 0;
  while (!accept.empty()) {
    const std::size_t comma = accept.find(',');
    const std::string_view element = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);

    const std::size_t semi = element.find(';');
    const std::string_view range = trim_ows(element.substr(0, semi));
    const std::size_t slash = range.find('/');
    if (slash == std::string_view::npos) continue;  // not a media range
    const std::string_view type = range.substr(0, slash);
    const std::string_view subtype = range.substr(slash + 1);
    const int q = element_weight(semi == std::string_view::npos ? std::string_view{} : element.substr(semi + 1));
    if (q < 0) continue;  // an element with a broken weight is ignored
    const std::size_t at = position++;

    for (std::size_t i = 0; i < n; ++i) {
      const std::string_view offer = offers[i];
      const std::size_t offer_slash = offer.find('/');
      const std::string_view offer_type = offer.substr(0, offer_slash);
      const std::string_view offer_subtype =
          offer_slash == std::string_view::npos ? std::string_view{} : offer.substr(offer_slash + 1);
      int specificity = -1;
      if (type == "*" && subtype == "*") specificity = 0;
      else if (core::iequals_ascii(type, offer_type) && subtype == "*") specificity = 1;
      else if (core::iequals_ascii(type, offer_type) && core::iequals_ascii(subtype, offer_subtype)) specificity = 2;
      if (specificity < 0) continue;
      match& m = best[i];
      // The most specific range decides; among equally specific ones, the
      // higher weight (the first, if equal).
      if (specificity > m.specificity || (specificity == m.specificity && q > m.q)) m = {q, specificity, at};
    }
  }

  std::size_t chosen = npos;
  for (std::size_t i = 0; i < n; ++i) {
    const match& m = best[i];
    if (m.q <= 0) continue;
    if (chosen == npos || m.q > best[chosen].q || (m.q == best[chosen].q && m.position < best[chosen].position))
      chosen = i;
  }
  return chosen;
}

}  // namespace gateway::http
