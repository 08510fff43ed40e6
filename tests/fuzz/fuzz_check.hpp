#pragma once
// Shared by the libFuzzer targets in tests/fuzz/: an invariant check that
// stops the fuzzer with a crash (which libFuzzer records as a finding, with
// the input that caused it) and says which invariant broke.
//
// __builtin_trap rather than assert(): it fires in every build type, and
// libFuzzer reports SIGILL as a crash, saving the input.
#include <cstdint>
#include <cstdio>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "fuzz invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      __builtin_trap();                                                                     \
    }                                                                                       \
  } while (0)

namespace gateway::fuzz {

// Whether `part` lies inside `whole` (an empty view counts as inside: it
// owns no bytes, and views such as an absent query string are null).
inline bool view_inside(std::string_view part, std::string_view whole) noexcept {
  if (part.empty()) return true;
  auto p = reinterpret_cast<std::uintptr_t>(part.data());
  auto w = reinterpret_cast<std::uintptr_t>(whole.data());
  return p >= w && p + part.size() <= w + whole.size();
}

}  // namespace gateway::fuzz
