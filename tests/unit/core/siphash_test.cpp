#include "gateway/core/siphash.hpp"

#include <catch2/catch.hpp>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <string>

using gateway::core::siphash128;
using gateway::core::siphash_digest;
using gateway::core::siphash_key;
using gateway::core::siphash_words;

namespace {

// OpenSSL's SipHash (EVP_MAC "SIPHASH", 2-4 rounds, 16-byte output) as the
// reference the gateway's own implementation must agree with.
siphash_digest openssl_siphash128(const siphash_key& key, std::string_view data) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "SIPHASH", nullptr);
  REQUIRE(mac != nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  REQUIRE(ctx != nullptr);
  size_t size = 16;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
  REQUIRE(EVP_MAC_init(ctx, key.data(), key.size(), params) == 1);
  REQUIRE(EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1);
  siphash_digest out{};
  size_t written = 0;
  REQUIRE(EVP_MAC_final(ctx, out.data(), &written, out.size()) == 1);
  REQUIRE(written == 16);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return out;
}

}  // namespace

TEST_CASE("siphash128 matches the reference vector for the empty input", "[unit][core]") {
  // The SipHash authors' vectors_sip128[0]: key 00..0f, empty message.
  siphash_key key{};
  for (unsigned i = 0; i < 16; ++i) key[i] = static_cast<unsigned char>(i);
  const siphash_digest expected{0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
                                0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93};
  CHECK(siphash128(key, "") == expected);
}

TEST_CASE("siphash128 agrees with OpenSSL for every length from 0 to 70 bytes", "[unit][core]") {
  siphash_key key{};
  for (unsigned i = 0; i < 16; ++i) key[i] = static_cast<unsigned char>(0x5a ^ (i * 37));
  std::string data;
  for (unsigned n = 0; n <= 70; ++n) {
    INFO("length " << n);
    CHECK(siphash128(key, data) == openssl_siphash128(key, data));
    data.push_back(static_cast<char>(n * 151 + 7));
  }
}

TEST_CASE("siphash128 depends on the key and on every input byte", "[unit][core]") {
  siphash_key a{}, b{};
  b[15] = 1;
  const std::string msg = "loadtest-key-0123456789";
  CHECK(siphash128(a, msg) != siphash128(b, msg));
  for (std::size_t i = 0; i < msg.size(); ++i) {
    std::string changed = msg;
    changed[i] ^= 1;
    CHECK(siphash128(a, changed) != siphash128(a, msg));
  }
}

TEST_CASE("siphash128 over key words gives the byte form's two halves, little-endian", "[unit][core]") {
  siphash_key key{};
  for (unsigned i = 0; i < 16; ++i) key[i] = static_cast<unsigned char>(i);
  std::uint64_t k0 = 0, k1 = 0;
  for (int i = 7; i >= 0; --i) {
    k0 = (k0 << 8) | key[i];
    k1 = (k1 << 8) | key[8 + i];
  }
  for (std::string_view msg : {"", "a", "0123456789abcdef-", "loadtest-key"}) {
    INFO("message " << msg);
    const siphash_digest bytes = siphash128(key, msg);
    const siphash_words words = siphash128(k0, k1, msg);
    std::uint64_t first = 0, second = 0;
    for (int i = 7; i >= 0; --i) {
      first = (first << 8) | bytes[i];
      second = (second << 8) | bytes[8 + i];
    }
    CHECK(words.first == first);
    CHECK(words.second == second);
  }
}
