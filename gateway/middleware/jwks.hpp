#pragma once
// The public keys that verify asymmetric JWTs (jwt.hpp): a JSON Web Key Set
// (RFC 7517 section 5) read from the --jwt-jwks file.
//
// A `jwk_set` is built once (at start-up, and again for each SIGHUP reload,
// which builds a new set and leaves the running one alone) and is then
// immutable: select() and the keys may be used from any number of threads at
// once. Building throws; nothing afterwards does.
//
// What a key may be (RFC 7518 section 6):
// - "kty": "RSA" with "n" and "e", a modulus of 2048 to 8192 bits (RFC 7518
//   section 3.3 requires at least 2048), for RS256, RS384, RS512;
// - "kty": "EC" with "crv" "P-256" (ES256) or "P-384" (ES384) and "x", "y"
//   (the point must lie on the curve);
// - "kty": "OKP" with "crv": "Ed25519" and "x" (RFC 8037), for EdDSA.
// All values are base64url without padding (core/base64url.hpp).
//
// A key's "alg", when present, is the one algorithm it verifies; without it
// the key verifies every algorithm of its type. Either way the key's type
// must fit the token's algorithm, so an RSA public key never verifies an
// ES256 or HS256 token ("algorithm confusion"): HMAC secrets come only from
// --jwt-secret, never from this file.
//
// Keys this gateway cannot use are skipped and counted in ignored(), as RFC
// 7517 section 5 asks: another "kty" ("oct" included), another curve, a
// "use" other than "sig", "key_ops" without "verify", an "alg" this gateway
// does not verify (PS256, RSA-OAEP, ...). Anything else wrong is an error
// naming the key: bad JSON, a known key with a missing or malformed member,
// a short RSA modulus, a point off its curve, a "kid" used twice, an empty
// "kid" (a key without one leaves the member out), a "kid" longer than
// max_kid_size, more than max_keys keys, or no usable key at all.
// Private members ("d", "p", ...) are ignored: only public halves are built.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace gateway::middleware {

// The JWS algorithms the gateway verifies (RFC 7518 section 3.1; RFC 8037
// section 3.1 for EdDSA).
enum class jws_alg : std::uint8_t { hs256, hs384, hs512, rs256, rs384, rs512, es256, es384, eddsa };

// The algorithm an "alg" value names, compared exactly (RFC 7515 section
// 4.1.1: case-sensitive); nullopt for any other value, "none" included.
std::optional<jws_alg> parse_jws_alg(std::string_view name) noexcept;
std::string_view to_string(jws_alg a) noexcept;
constexpr bool is_hmac(jws_alg a) noexcept { return a <= jws_alg::hs512; }

enum class jwk_type : std::uint8_t { rsa, ec_p256, ec_p384, ed25519 };

struct pkey_deleter {
  void operator()(evp_pkey_st* p) const noexcept;
};

struct jwk {
  std::string kid;             // empty when the key has none
  jwk_type type = jwk_type::rsa;
  std::optional<jws_alg> alg;  // the key's "alg", when it has one
  std::unique_ptr<evp_pkey_st, pkey_deleter> key;  // the public key

  // True when this key may verify a token signed with `a`.
  bool fits(jws_alg a) const noexcept;
};

class jwk_set {
 public:
  static constexpr std::size_t max_file_size = 1024 * 1024;
  static constexpr std::size_t max_keys = 256;
  static constexpr std::size_t max_kid_size = 256;

  // Parses a JWK Set document. Throws std::invalid_argument with a message
  // naming the key ("keys[2] (kid \"a\"): n is not base64url"); key material
  // never appears in a message.
  static jwk_set parse(std::string_view json);
  // Reads and parses `path`; throws std::runtime_error "PATH: why" for an
  // unreadable, oversized or invalid file.
  static jwk_set load(const std::string& path);

  enum class outcome : std::uint8_t {
    found,
    unknown_kid,  // the token's kid names no key
    wrong_alg,    // its kid names a key whose type or "alg" does not fit
    no_key,       // no kid, and no key fits the alg
    ambiguous,    // no kid, and several keys fit the alg
  };
  struct selection {
    const jwk* key = nullptr;  // set when outcome::found
    outcome why = outcome::no_key;
  };
  // The key for a token signed with `alg` and carrying `kid` (null: the
  // token has no "kid"). A kid selects only the key with that kid ("" names
  // none); without a kid, only a set with exactly one key that fits `alg`
  // answers. Thread-safe, allocation-free.
  selection select(jws_alg alg, const std::string_view* kid) const noexcept;

  const std::vector<jwk>& keys() const noexcept { return keys_; }
  std::size_t ignored() const noexcept { return ignored_; }
  // "2 keys (kid \"a\" RSA, kid \"b\" EC P-256), 1 ignored", for log lines.
  std::string describe() const;

 private:
  std::vector<jwk> keys_;
  std::size_t ignored_ = 0;
};

}  // namespace gateway::middleware
