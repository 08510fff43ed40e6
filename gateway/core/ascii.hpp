#pragma once
// ASCII helpers shared by every layer (core depends on nothing above it).
#include <cstddef>
#include <string_view>

namespace gateway::core {

// ASCII case-insensitive equality: header names, tokens, unit suffixes.
// Bytes outside A-Z and a-z compare exactly.
inline bool iequals_ascii(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x != y) {
      if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z') return false;
    }
  }
  return true;
}

}  // namespace gateway::core
