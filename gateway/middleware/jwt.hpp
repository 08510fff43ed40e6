#pragma once
// Verification of signed JSON Web Tokens (RFC 7519) in JWS compact
// serialisation (RFC 7515 section 7.1), for `Authorization: Bearer <token>`.
//
// A `jwt_verifier` is built once (at start-up and for each reload) from
// `jwt_options` and is then immutable: `verify` is const and may be called
// from any number of threads at the same time without locking. It allocates
// only the decoded token parts, their parsed JSON and libcrypto's
// per-verification context (bounded: the token is capped at
// `jwt_verifier::max_token_size`), throws nothing but std::bad_alloc and never
// blocks. Header and payload are read with gateway/json/reader.hpp.
//
// What is accepted:
// - exactly three base64url segments (RFC 7515 section 2: no padding, only
//   [A-Za-z0-9_-], unused trailing bits zero);
// - a JOSE header that is a JSON object whose "alg" is exactly one of
//   HS256, HS384, HS512 (RFC 7518 section 3.2), RS256, RS384, RS512 (3.3),
//   ES256, ES384 (3.4) or EdDSA with Ed25519 (RFC 8037 section 3.1). "none"
//   in any spelling, PS*, any other value, a missing or non-string "alg",
//   and any "crit" header (RFC 7515 section 4.1.11: we understand no
//   extensions) are refused;
// - the key comes from the configuration, never from the token: HS* use
//   `secret` (and nothing else), the others a key of `jwks` (middleware/
//   jwks.hpp) whose type and "alg" fit the token's "alg", chosen by the
//   token's "kid"; a token without "kid" is verified only when exactly one
//   key fits its "alg". "jwk", "jku", "x5u" and "x5c" headers are ignored. So
//   a token cannot choose a weaker algorithm, nor have an RSA public key
//   used as an HMAC secret;
// - a signature that verifies: HMAC compared in constant time; RSASSA-PKCS1-
//   v1_5; ECDSA given as R || S (RFC 7518 section 3.4, 64 or 96 bytes);
//   Ed25519;
// - no duplicate "alg", "kid" or "crit" in the header, nor "exp", "nbf",
//   "iss", "aud" or a forwarded claim in the payload (RFC 7515 section 4
//   allows refusing duplicates);
// - a payload that is a JSON object. "exp" and "nbf" are optional, but when
//   present they must be finite numbers (NumericDate, RFC 7519 section 2) and are
//   checked against `now` with `leeway` either way. "iss" must be a string and
//   "aud" a string or an array of strings when present. `issuer` / `audience`
//   are only enforced when configured (a configured value requires the claim).
//
// With no secret and no key set, every token is refused (bad_signature).
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/middleware/jwks.hpp"

namespace gateway::middleware {

// A claim the auth layer forwards to the backend as a request header
// (--jwt-claim-header CLAIM=HEADER).
struct jwt_claim_header {
  std::string claim;
  std::string header;
};

struct jwt_options {
  std::string secret;                    // HMAC key; empty: HS* tokens refused
  std::chrono::seconds leeway{30};       // clock skew allowed on exp and nbf
  std::optional<std::string> issuer;     // when set, "iss" must equal it
  std::optional<std::string> audience;   // when set, "aud" must be or contain it
  std::shared_ptr<const jwk_set> jwks{};  // keys for RS*, ES*, EdDSA; null: those refused
  std::vector<jwt_claim_header> claim_headers{};  // claims handed to a jwt_claim_sink
};

// Receives the forwarded claims of a valid token (see verify()).
class jwt_claim_sink {
 public:
  // `index` into jwt_options::claim_headers; `value` is valid only during
  // the call (the caller copies it).
  virtual void claim(std::size_t index, std::string_view value) = 0;

 protected:
  ~jwt_claim_sink() = default;
};

enum class jwt_error {
  none,             // the token is valid
  malformed,        // not three base64url parts, bad JSON, wrong claim types, too long
  bad_signature,    // signature mismatch (or no secret configured)
  alg_not_allowed,  // "alg" missing, "none", unsupported, without configured keys, or not the kid's key's
  unknown_key,      // the kid names no key, or no kid and not exactly one key fits "alg"
  expired,          // now >= exp + leeway
  not_yet_valid,    // now < nbf - leeway
  wrong_issuer,     // issuer configured and "iss" missing or different
  wrong_audience,   // audience configured and "aud" missing or not matching
};

// "ok", "malformed", "bad_signature", ... (stable names for logs and metrics).
std::string_view to_string(jwt_error e) noexcept;

struct jwt_result {
  jwt_error error = jwt_error::none;
  // A short static explanation ("signature mismatch", "exp is not a
  // number"); never contains token content. Points to a string literal.
  std::string_view reason = "ok";

  bool ok() const noexcept { return error == jwt_error::none; }
  explicit operator bool() const noexcept { return ok(); }
};

class jwt_verifier {
 public:
  static constexpr std::size_t max_token_size = 8 * 1024;

  // Start-up and reload only. Prepares one keyed HMAC context per algorithm
  // and the digests of the public-key algorithms; throws std::runtime_error
  // if libcrypto cannot provide them (broken install).
  explicit jwt_verifier(jwt_options options);
  ~jwt_verifier();
  jwt_verifier(jwt_verifier&&) noexcept;
  jwt_verifier& operator=(jwt_verifier&&) noexcept;
  jwt_verifier(const jwt_verifier&) = delete;
  jwt_verifier& operator=(const jwt_verifier&) = delete;

  // `token` is the text after "Bearer " (no surrounding whitespace). `now` is
  // injected so tests control the clock. Thread-safe; noexcept except for
  // std::bad_alloc on the small copies. For a valid token, `claims` (when
  // given) receives each of options().claim_headers the payload holds as a
  // string that is a valid field value (RFC 9110 section 5.5), a number (its
  // JSON text) or a boolean, in that order; other claims are not handed on.
  jwt_result verify(std::string_view token, std::chrono::system_clock::time_point now,
                    jwt_claim_sink* claims = nullptr) const;

  const jwt_options& options() const noexcept { return options_; }

 private:
  struct keyed_macs;
  struct digests;
  jwt_options options_;
  std::unique_ptr<keyed_macs> macs_;  // null when the secret is empty
  std::unique_ptr<digests> digests_;  // null without a key set
};

}  // namespace gateway::middleware
