#include "gateway/http/syntax.hpp"

#include <array>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace gateway::http {

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

bool line_ends_are_crlf(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  // `carry` is 1 when the byte before position i is a CR: then, and only
  // then, the byte at i must be an LF.
  unsigned carry = 0;
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const auto c = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, cr)));
    const auto l = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf)));
    // Bit j of the LF mask must be bit j-1 of the CR mask (bit 0: carry).
    if (l != (((c << 1) | carry) & 0xFFFFu)) return false;
    carry = c >> 15;
  }
#endif
  for (; i < n; ++i) {
    if ((p[i] == '\n') != (carry != 0)) return false;
    carry = p[i] == '\r' ? 1u : 0u;
  }
  return carry == 0;  // a CR at the very end has no LF
}

bool has_control_byte(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i c1f = _mm_set1_epi8(0x1F);
  const __m128i del = _mm_set1_epi8(0x7F);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    // v <= 0x1F, unsigned: min(v, 0x1F) == v.
    const __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v);
    const __m128i allowed =
        _mm_or_si128(_mm_cmpeq_epi8(v, tab), _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    const __m128i bad = _mm_or_si128(_mm_andnot_si128(allowed, low), _mm_cmpeq_epi8(v, del));
    if (_mm_movemask_epi8(bad) != 0) return true;
  }
#endif
  for (; i < n; ++i) {
    const unsigned char c = p[i];
    if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7F) return true;
  }
  return false;
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
  // Content-Length frames the message for the next hop too; a Connection
  // that names it (RFC 9110 section 7.6.1 forbids that) must not leave a
  // forwarded body without its length.
  if (name.size() == 14 && iequals(name, "content-length")) return false;
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
