#include "gateway/core/siphash.hpp"

#include <cstring>

namespace gateway::core {

namespace {

inline std::uint64_t rotl(std::uint64_t x, int b) noexcept { return (x << b) | (x >> (64 - b)); }

inline std::uint64_t load_le64(const unsigned char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

inline void store_le64(unsigned char* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i, v >>= 8) p[i] = static_cast<unsigned char>(v);
}

struct state {
  std::uint64_t v0, v1, v2, v3;
  void round() noexcept {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }
  void compress(std::uint64_t m) noexcept {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  std::uint64_t finish_half() noexcept {
    round();
    round();
    round();
    round();
    return v0 ^ v1 ^ v2 ^ v3;
  }
};

}  // namespace

// The reference implementation's 128-bit variant: v1 ^= 0xee at the start,
// v2 ^= 0xee before the first four finalisation rounds, v1 ^= 0xdd before
// the second four.
siphash_words siphash128(std::uint64_t k0, std::uint64_t k1, std::string_view data) noexcept {
  state s{0x736f6d6570736575ull ^ k0, 0x646f72616e646f6dull ^ k1 ^ 0xee, 0x6c7967656e657261ull ^ k0,
          0x7465646279746573ull ^ k1};
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t n = data.size();
  const std::size_t whole = n & ~std::size_t{7};
  for (std::size_t i = 0; i < whole; i += 8) s.compress(load_le64(p + i));
  unsigned char last[8] = {};
  std::memcpy(last, p + whole, n - whole);
  s.compress(load_le64(last) | (static_cast<std::uint64_t>(n) << 56));
  s.v2 ^= 0xee;
  siphash_words out{};
  out.first = s.finish_half();
  s.v1 ^= 0xdd;
  out.second = s.finish_half();
  return out;
}

siphash_digest siphash128(const siphash_key& key, std::string_view data) noexcept {
  const siphash_words w = siphash128(load_le64(key.data()), load_le64(key.data() + 8), data);
  siphash_digest out;
  store_le64(out.data(), w.first);
  store_le64(out.data() + 8, w.second);
  return out;
}

}  // namespace gateway::core
