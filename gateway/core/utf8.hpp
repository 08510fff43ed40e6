#pragma once
// UTF-8 well-formedness (RFC 3629 section 4, the same table as Unicode's
// table 3-7): overlong forms, encoded surrogates (ED A0..BF) and code points
// above U+10FFFF are not well formed. Used wherever the gateway writes text
// that must be valid UTF-8 (JSON, Prometheus labels) or counts characters.
#include <cstddef>
#include <string_view>

namespace gateway::core {

// Length (1 to 4) of the well-formed UTF-8 sequence that starts at p
// (p < end), or 0 when the bytes there are not one.
inline std::size_t utf8_sequence_length(const unsigned char* p, const unsigned char* end) noexcept {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  const auto avail = static_cast<std::size_t>(end - p);
  auto cont = [&](std::size_t k) { return k < avail && (p[k] & 0xC0) == 0x80; };
  auto in = [&](std::size_t k, unsigned char lo, unsigned char hi) { return k < avail && p[k] >= lo && p[k] <= hi; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return in(1, 0xA0, 0xBF) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return in(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return in(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return in(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// The same for the sequence at s[i] (i < s.size()).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto* base = reinterpret_cast<const unsigned char*>(s.data());
  return utf8_sequence_length(base + i, base + s.size());
}

// Characters in `s`, counting each byte that starts no well-formed sequence
// as one (what a replacement by U+FFFD would show).
inline std::size_t utf8_length(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  std::size_t count = 0;
  while (p != end) {
    const std::size_t n = *p < 0x80 ? 1 : utf8_sequence_length(p, end);
    p += n ? n : 1;
    ++count;
  }
  return count;
}

}  // namespace gateway::core
