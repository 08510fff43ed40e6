#include "gateway/core/base64url.hpp"

#include <array>
#include <cstdint>

namespace gateway::core {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<std::int8_t, 256> make_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}

constexpr auto table = make_table();

}  // namespace

bool base64url_decode(std::string_view in, std::string& out) {
  out.clear();
  const std::size_t tail = in.size() % 4;
  if (tail == 1) return false;  // a lone 6-bit group encodes no byte
  out.resize(in.size() / 4 * 3 + (tail == 0 ? 0 : tail - 1));
  const auto sextet = [&](std::size_t i, bool& bad) {
    const int v = table[static_cast<unsigned char>(in[i])];
    bad = bad || v < 0;
    return static_cast<std::uint32_t>(v) & 63u;
  };
  bool bad = false;
  std::size_t o = 0;
  std::size_t i = 0;
  for (; i + 4 <= in.size(); i += 4) {
    const std::uint32_t v = sextet(i, bad) << 18 | sextet(i + 1, bad) << 12 | sextet(i + 2, bad) << 6 |
                            sextet(i + 3, bad);
    out[o++] = static_cast<char>(v >> 16);
    out[o++] = static_cast<char>((v >> 8) & 0xffu);
    out[o++] = static_cast<char>(v & 0xffu);
  }
  if (tail == 2) {
    const std::uint32_t v = sextet(i, bad) << 6 | sextet(i + 1, bad);
    out[o++] = static_cast<char>(v >> 4);
    bad = bad || (v & 0x0fu) != 0;  // 4 unused bits
  } else if (tail == 3) {
    const std::uint32_t v = sextet(i, bad) << 12 | sextet(i + 1, bad) << 6 | sextet(i + 2, bad);
    out[o++] = static_cast<char>(v >> 10);
    out[o++] = static_cast<char>((v >> 2) & 0xffu);
    bad = bad || (v & 0x03u) != 0;  // 2 unused bits
  }
  return !bad;
}

std::string base64url_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  const auto byte = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(in[k])); };
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    for (int shift : {18, 12, 6, 0}) out += alphabet[(v >> shift) & 63u];
  }
  if (in.size() - i == 1) {
    const std::uint32_t v = byte(i) << 16;
    for (int shift : {18, 12}) out += alphabet[(v >> shift) & 63u];
  } else if (in.size() - i == 2) {
    const std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    for (int shift : {18, 12, 6}) out += alphabet[(v >> shift) & 63u];
  }
  return out;
}

}  // namespace gateway::core
