#pragma once
// Verification of HMAC-signed JSON Web Tokens (RFC 7519) in JWS compact
// serialisation (RFC 7515 section 7.1), for `Authorization: Bearer <token>`.
//
// A `jwt_verifier` is built once at start-up from `jwt_options` and is then
// immutable: `verify` is const and may be called from any number of threads
// at the same time without locking. It allocates only the decoded token parts
// and their parsed JSON (bounded: the token is capped at
// `jwt_verifier::max_token_size`), throws nothing but std::bad_alloc and never
// blocks. Header and payload are read with gateway/json/reader.hpp.
//
// What is accepted:
// - exactly three base64url segments (RFC 7515 section 2: no padding, only
//   [A-Za-z0-9_-], unused trailing bits zero);
// - a JOSE header that is a JSON object whose "alg" is exactly "HS256",
//   "HS384" or "HS512" (RFC 7518 section 3.2). "none" in any spelling, RS*,
//   ES*, PS*, EdDSA, a missing or non-string "alg", and any "crit" header
//   (RFC 7515 section 4.1.11: we understand no extensions) are refused, so a
//   token cannot pick a weaker or different algorithm than the one the
//   gateway is configured for;
// - a signature equal (constant-time comparison) to the HMAC of the first two
//   segments under `secret`;
// - no duplicate "alg" or "crit" in the header, nor "exp", "nbf", "iss" or
//   "aud" in the payload (RFC 7515 section 4 allows refusing duplicates);
// - a payload that is a JSON object. "exp" and "nbf" are optional, but when
//   present they must be finite numbers (NumericDate, RFC 7519 section 2) and are
//   checked against `now` with `leeway` either way. "iss" must be a string and
//   "aud" a string or an array of strings when present. `issuer` / `audience`
//   are only enforced when configured (a configured value requires the claim).
//
// With an empty `secret`, every token is refused (bad_signature).
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace gateway::middleware {

struct jwt_options {
  std::string secret;                    // HMAC key; empty: refuse every token
  std::chrono::seconds leeway{30};       // clock skew allowed on exp and nbf
  std::optional<std::string> issuer;     // when set, "iss" must equal it
  std::optional<std::string> audience;   // when set, "aud" must be or contain it
};

enum class jwt_error {
  none,             // the token is valid
  malformed,        // not three base64url parts, bad JSON, wrong claim types, too long
  bad_signature,    // signature mismatch (or no secret configured)
  alg_not_allowed,  // "alg" missing, "none", or anything but HS256/384/512
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

  // Start-up only. Prepares one keyed HMAC context per algorithm; throws
  // std::runtime_error if libcrypto cannot provide HMAC (broken install).
  explicit jwt_verifier(jwt_options options);
  ~jwt_verifier();
  jwt_verifier(jwt_verifier&&) noexcept;
  jwt_verifier& operator=(jwt_verifier&&) noexcept;
  jwt_verifier(const jwt_verifier&) = delete;
  jwt_verifier& operator=(const jwt_verifier&) = delete;

  // `token` is the text after "Bearer " (no surrounding whitespace). `now` is
  // injected so tests control the clock. Thread-safe; noexcept except for
  // std::bad_alloc on the small copies.
  jwt_result verify(std::string_view token, std::chrono::system_clock::time_point now) const;

  const jwt_options& options() const noexcept { return options_; }

 private:
  struct keyed_macs;
  jwt_options options_;
  std::unique_ptr<keyed_macs> macs_;  // null when the secret is empty
};

}  // namespace gateway::middleware
