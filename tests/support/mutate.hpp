#pragma once
// Random edits of an HTTP head for the differential tests that compare a
// fast path with llhttp on the same input.

#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace gateway::test {

// `seed` with one to three edits, each at a random place before its last
// `keep_tail` bytes: a byte replaced or inserted (from `bytes`), a byte
// removed, or a whole line of `lines` inserted after a line end.
inline std::string mutate_head(std::string m, std::mt19937& rng, const std::string& bytes,
                               const std::vector<std::string>& lines, std::size_t keep_tail = 0) {
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits && m.size() > keep_tail; ++e) {
    const std::size_t at = rng() % (m.size() - keep_tail);
    switch (rng() % 5) {
      case 0: m[at] = bytes[rng() % bytes.size()]; break;
      case 1: m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), bytes[rng() % bytes.size()]); break;
      case 2: m.erase(at, 1); break;
      default: {
        const std::size_t eol = m.find("\r\n", at);
        if (eol != std::string::npos && eol + 2 < m.size()) m.insert(eol + 2, lines[rng() % lines.size()] + "\r\n");
        break;
      }
    }
  }
  return m;
}

}  // namespace gateway::test
