#pragma once
// SipHash-2-4 with its 128-bit output (Aumasson and Bernstein, "SipHash: a
// fast short-input PRF", 2012): a keyed pseudorandom function for short
// inputs. Without the key its output says nothing about the input, and its
// running time depends on the input's length only, never on its content.
//
// Pure functions: any thread, no allocation, no exception.
#include <array>
#include <cstdint>
#include <string_view>

namespace gateway::core {

using siphash_key = std::array<unsigned char, 16>;
using siphash_digest = std::array<unsigned char, 16>;

siphash_digest siphash128(const siphash_key& key, std::string_view data) noexcept;

// The same function with the key as its two little-endian 64-bit words and
// the output as its two 64-bit halves (`first` is the digest's first eight
// bytes read little-endian): for callers that index by the digest's bits.
struct siphash_words {
  std::uint64_t first;
  std::uint64_t second;
};
siphash_words siphash128(std::uint64_t k0, std::uint64_t k1, std::string_view data) noexcept;

}  // namespace gateway::core
