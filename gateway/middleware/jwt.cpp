#include "gateway/middleware/jwt.hpp"

#include "gateway/core/ascii.hpp"
#include "gateway/core/base64url.hpp"
#include "gateway/http/syntax.hpp"
#include "gateway/json/reader.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace gateway::middleware {

namespace {

// Header and payload are parsed by the gateway's strict RFC 8259 reader
// (UTF-8 checked, lone surrogates refused); the nesting cap keeps the DOM of
// an 8 KiB token small. Duplicate member names among those we look at are
// refused: RFC 7515 section 4 and RFC 7519 section 4 allow a parser to reject
// them, and "first wins" vs "last wins" would let two parsers disagree about
// which "exp" or "alg" a token carries.
constexpr json::parse_options token_json_options{.max_depth = 32, .max_size = jwt_verifier::max_token_size};

using json::unique_member;

bool is_string_array(const json::value& v) {
  if (!v.is_array()) return false;
  for (const json::value& item : v.items()) {
    if (!item.is_string()) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------

using core::base64url_decode;
using core::iequals_ascii;

constexpr std::array<const char*, 3> sha_names = {"SHA256", "SHA384", "SHA512"};
constexpr std::array<std::size_t, 3> hmac_sizes = {32, 48, 64};

// Which of SHA-256/384/512 an algorithm hashes with (EdDSA hashes inside
// the signature scheme: none).
std::size_t sha_index(jws_alg a) {
  switch (a) {
    case jws_alg::hs256: case jws_alg::rs256: case jws_alg::es256: return 0;
    case jws_alg::hs384: case jws_alg::rs384: case jws_alg::es384: return 1;
    case jws_alg::hs512: case jws_alg::rs512: return 2;
    case jws_alg::eddsa: break;
  }
  return sha_names.size();
}

jwt_result fail(jwt_error e, std::string_view reason) { return jwt_result{e, reason}; }

// One DER INTEGER (X.690 section 8.3) from a big-endian unsigned value:
// leading zero bytes dropped (one kept for zero), a zero byte added when
// the high bit is set. Returns the bytes written (at most n + 3).
std::size_t der_integer(const unsigned char* p, std::size_t n, unsigned char* out) {
  while (n > 1 && *p == 0) {
    ++p;
    --n;
  }
  const bool pad = (*p & 0x80u) != 0;
  out[0] = 0x02;
  out[1] = static_cast<unsigned char>(n + (pad ? 1 : 0));
  std::size_t o = 2;
  if (pad) out[o++] = 0;
  std::memcpy(out + o, p, n);
  return o + n;
}

// JWS carries an ECDSA signature as R || S, each the size of the curve's
// order (RFC 7518 section 3.4); libcrypto verifies the DER form
// Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 2.2.3).
// `raw` has 2 * half bytes; `out` must hold 2 * (half + 3) + 3.
std::size_t ecdsa_raw_to_der(std::string_view raw, unsigned char* out) {
  const std::size_t half = raw.size() / 2;
  const auto* r = reinterpret_cast<const unsigned char*>(raw.data());
  unsigned char body[2 * (48 + 3)];
  std::size_t len = der_integer(r, half, body);
  len += der_integer(r + half, half, body + len);
  std::size_t o = 0;
  out[o++] = 0x30;
  if (len >= 0x80) out[o++] = 0x81;  // long form; the body is under 256 bytes
  out[o++] = static_cast<unsigned char>(len);
  std::memcpy(out + o, body, len);
  return o + len;
}

}  // namespace

std::string_view to_string(jwt_error e) noexcept {
  switch (e) {
    case jwt_error::none: return "ok";
    case jwt_error::malformed: return "malformed";
    case jwt_error::bad_signature: return "bad_signature";
    case jwt_error::alg_not_allowed: return "alg_not_allowed";
    case jwt_error::unknown_key: return "unknown_key";
    case jwt_error::expired: return "expired";
    case jwt_error::not_yet_valid: return "not_yet_valid";
    case jwt_error::wrong_issuer: return "wrong_issuer";
    case jwt_error::wrong_audience: return "wrong_audience";
  }
  return "unknown";
}

// One HMAC context per algorithm, keyed once at start-up. verify() duplicates
// the keyed template instead of calling HMAC(): with OpenSSL 3 the one-shot
// HMAC() fetches the algorithm from the provider store on every call (a
// shared, locked lookup), and re-derives the key pads; EVP_MAC_CTX_dup only
// reads the template, so concurrent verify() calls share nothing mutable.
struct jwt_verifier::keyed_macs {
  struct mac_deleter {
    void operator()(EVP_MAC* m) const noexcept { EVP_MAC_free(m); }
  };
  struct ctx_deleter {
    void operator()(EVP_MAC_CTX* c) const noexcept { EVP_MAC_CTX_free(c); }
  };
  using ctx_ptr = std::unique_ptr<EVP_MAC_CTX, ctx_deleter>;

  std::unique_ptr<EVP_MAC, mac_deleter> mac;
  std::array<ctx_ptr, 3> templates;

  explicit keyed_macs(std::string_view secret) : mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr)) {
    if (!mac) throw std::runtime_error("jwt: libcrypto has no HMAC");
    for (std::size_t i = 0; i < templates.size(); ++i) {
      templates[i].reset(EVP_MAC_CTX_new(mac.get()));
      if (!templates[i]) throw std::runtime_error("jwt: cannot create an HMAC context");
      OSSL_PARAM params[] = {
          OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(sha_names[i]), 0),
          OSSL_PARAM_construct_end()};
      if (EVP_MAC_init(templates[i].get(), reinterpret_cast<const unsigned char*>(secret.data()), secret.size(),
                       params) != 1) {
        throw std::runtime_error("jwt: cannot key the HMAC context");
      }
    }
  }

  // Writes the MAC of `data` into `out`; false on a libcrypto failure.
  bool compute(std::size_t alg, std::string_view data, std::array<unsigned char, 64>& out,
               std::size_t& out_len) const {
    ctx_ptr ctx(EVP_MAC_CTX_dup(templates[alg].get()));
    if (!ctx) return false;
    if (EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
      return false;
    }
    return EVP_MAC_final(ctx.get(), out.data(), &out_len, out.size()) == 1 && out_len == hmac_sizes[alg];
  }
};

// The digests of the public-key algorithms, fetched once: passing a fetched
// EVP_MD to EVP_DigestVerifyInit spares a provider lookup per verification.
// Each verification has its own EVP_MD_CTX; the keys are only read, which
// libcrypto allows from several threads at once.
struct jwt_verifier::digests {
  struct md_deleter {
    void operator()(EVP_MD* m) const noexcept { EVP_MD_free(m); }
  };
  struct md_ctx_deleter {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
  };
  std::array<std::unique_ptr<EVP_MD, md_deleter>, 3> md;

  digests() {
    for (std::size_t i = 0; i < md.size(); ++i) {
      md[i].reset(EVP_MD_fetch(nullptr, sha_names[i], nullptr));
      if (!md[i]) throw std::runtime_error("jwt: libcrypto has no " + std::string(sha_names[i]));
    }
  }

  // True when `signature` (as JWS carries it) signs `input` under `key`.
  bool verify(const jwk& key, jws_alg alg, std::string_view input, std::string_view signature) const {
    const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
    std::size_t sig_len = signature.size();
    unsigned char der[2 * (48 + 3) + 3];
    if (alg == jws_alg::es256 || alg == jws_alg::es384) {
      if (signature.size() != (alg == jws_alg::es256 ? 64u : 96u)) return false;
      sig_len = ecdsa_raw_to_der(signature, der);
      sig = der;
    }
    const std::size_t d = sha_index(alg);
    std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx(EVP_MD_CTX_new());
    if (!ctx) throw std::bad_alloc();
    const bool ok =
        EVP_DigestVerifyInit(ctx.get(), nullptr, d < md.size() ? md[d].get() : nullptr, nullptr, key.key.get()) == 1 &&
        EVP_DigestVerify(ctx.get(), sig, sig_len, reinterpret_cast<const unsigned char*>(input.data()),
                         input.size()) == 1;
    // A refused signature leaves reasons on this thread's error queue; they
    // say nothing the result does not.
    if (!ok) ERR_clear_error();
    return ok;
  }
};

jwt_verifier::jwt_verifier(jwt_options options) : options_(std::move(options)) {
  if (options_.leeway.count() < 0) options_.leeway = std::chrono::seconds{0};
  if (!options_.secret.empty()) macs_ = std::make_unique<keyed_macs>(options_.secret);
  if (options_.jwks) digests_ = std::make_unique<digests>();
}

jwt_verifier::~jwt_verifier() = default;
jwt_verifier::jwt_verifier(jwt_verifier&&) noexcept = default;
jwt_verifier& jwt_verifier::operator=(jwt_verifier&&) noexcept = default;

jwt_result jwt_verifier::verify(std::string_view token, std::chrono::system_clock::time_point now,
                                jwt_claim_sink* claims) const {
  if (!macs_ && !options_.jwks) return fail(jwt_error::bad_signature, "no JWT secret configured");
  if (token.empty()) return fail(jwt_error::malformed, "empty token");
  if (token.size() > max_token_size) return fail(jwt_error::malformed, "token too long");

  // JWS compact serialisation (RFC 7515 section 7.1): exactly three parts.
  // Five parts would be a JWE (RFC 7516), which we do not accept either.
  const std::size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return fail(jwt_error::malformed, "token must have three parts");
  const std::size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail(jwt_error::malformed, "token must have three parts");
  }
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);

  std::string buffer;
  if (!base64url_decode(header_b64, buffer)) return fail(jwt_error::malformed, "header is not base64url");

  // The header decides only which algorithm runs and, for the public-key
  // ones, which configured key: a key never comes from the token itself.
  jws_alg alg = jws_alg::hs256;
  const jwk* key = nullptr;
  {
    const json::parse_result header = json::parse(buffer, token_json_options);
    if (!header || !header.value().is_object()) return fail(jwt_error::malformed, "header is not a JSON object");
    bool duplicate = false;
    const json::value* alg_field = unique_member(header.value(), "alg", duplicate);
    const json::value* crit = unique_member(header.value(), "crit", duplicate);
    const json::value* kid_field = unique_member(header.value(), "kid", duplicate);
    if (duplicate) return fail(jwt_error::malformed, "duplicate header member");
    if (alg_field == nullptr) return fail(jwt_error::alg_not_allowed, "alg missing");
    if (!alg_field->is_string()) return fail(jwt_error::alg_not_allowed, "alg is not a string");
    if (crit != nullptr) return fail(jwt_error::malformed, "crit header not supported");
    // "alg" values are case-sensitive (RFC 7515 section 4.1.1), so "hs256"
    // is refused too; "none" is named in the reason whatever its spelling.
    const std::string_view alg_name = alg_field->as_string();
    if (iequals_ascii(alg_name, "none")) return fail(jwt_error::alg_not_allowed, "alg none not allowed");
    const std::optional<jws_alg> parsed = parse_jws_alg(alg_name);
    if (!parsed) return fail(jwt_error::alg_not_allowed, "alg is not one of HS256/384/512, RS256/384/512, ES256/384, EdDSA");
    alg = *parsed;
    if (!is_hmac(alg)) {
      // An HS* token's "kid" is not looked at: its key is the one secret.
      if (kid_field != nullptr && !kid_field->is_string()) return fail(jwt_error::malformed, "kid is not a string");
      if (!options_.jwks) return fail(jwt_error::alg_not_allowed, "alg needs keys from --jwt-jwks");
      std::string_view kid;
      if (kid_field != nullptr) kid = kid_field->as_string();
      const jwk_set::selection picked = options_.jwks->select(alg, kid_field != nullptr ? &kid : nullptr);
      switch (picked.why) {
        case jwk_set::outcome::found: key = picked.key; break;
        case jwk_set::outcome::unknown_kid: return fail(jwt_error::unknown_key, "kid names no configured key");
        case jwk_set::outcome::wrong_alg: return fail(jwt_error::alg_not_allowed, "the kid's key does not fit alg");
        case jwk_set::outcome::no_key: return fail(jwt_error::unknown_key, "no configured key fits alg");
        case jwk_set::outcome::ambiguous:
          return fail(jwt_error::unknown_key, "token has no kid and several configured keys fit alg");
      }
    } else if (!macs_) {
      return fail(jwt_error::bad_signature, "no JWT secret configured");
    }
  }

  // Signature before the payload is parsed: no claim of an unauthenticated
  // token is looked at.
  if (!base64url_decode(signature_b64, buffer)) return fail(jwt_error::malformed, "signature is not base64url");
  if (is_hmac(alg)) {
    const std::size_t d = sha_index(alg);
    if (buffer.size() != hmac_sizes[d]) return fail(jwt_error::bad_signature, "signature has the wrong length");
    std::array<unsigned char, 64> expected{};
    std::size_t expected_len = 0;
    if (!macs_->compute(d, token.substr(0, dot2), expected, expected_len)) {
      return fail(jwt_error::bad_signature, "HMAC computation failed");
    }
    if (CRYPTO_memcmp(expected.data(), buffer.data(), expected_len) != 0) {
      return fail(jwt_error::bad_signature, "signature mismatch");
    }
  } else if (!digests_->verify(*key, alg, token.substr(0, dot2), buffer)) {
    return fail(jwt_error::bad_signature, "signature mismatch");
  }

  if (!base64url_decode(payload_b64, buffer)) return fail(jwt_error::malformed, "payload is not base64url");
  const json::parse_result payload = json::parse(buffer, token_json_options);
  if (!payload || !payload.value().is_object()) return fail(jwt_error::malformed, "payload is not a JSON object");
  bool duplicate = false;
  const json::value* exp = unique_member(payload.value(), "exp", duplicate);
  const json::value* nbf = unique_member(payload.value(), "nbf", duplicate);
  const json::value* iss = unique_member(payload.value(), "iss", duplicate);
  const json::value* aud = unique_member(payload.value(), "aud", duplicate);
  for (const jwt_claim_header& c : options_.claim_headers) unique_member(payload.value(), c.claim, duplicate);
  if (duplicate) return fail(jwt_error::malformed, "duplicate claim");
  // as_double() gives +-inf for numbers out of range ("1e999").
  if (exp != nullptr && (!exp->is_number() || !std::isfinite(exp->as_double()))) {
    return fail(jwt_error::malformed, "exp is not a number");
  }
  if (nbf != nullptr && (!nbf->is_number() || !std::isfinite(nbf->as_double()))) {
    return fail(jwt_error::malformed, "nbf is not a number");
  }
  if (iss != nullptr && !iss->is_string()) return fail(jwt_error::malformed, "iss is not a string");
  if (aud != nullptr && !aud->is_string() && !is_string_array(*aud)) {
    return fail(jwt_error::malformed, "aud is not a string or an array of strings");
  }

  // NumericDate: seconds since the epoch, possibly fractional (RFC 7519
  // section 2). exp: "the current date/time MUST be before" it (section
  // 4.1.4); nbf: "MUST be after or equal to" it (section 4.1.5); both with
  // the configured leeway for clock skew.
  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const auto leeway_s = static_cast<double>(options_.leeway.count());
  if (exp != nullptr && now_s >= exp->as_double() + leeway_s) return fail(jwt_error::expired, "token expired");
  if (nbf != nullptr && now_s < nbf->as_double() - leeway_s) {
    return fail(jwt_error::not_yet_valid, "token not valid yet");
  }

  if (options_.issuer && (iss == nullptr || iss->as_string() != *options_.issuer)) {
    return fail(jwt_error::wrong_issuer, "iss does not match");
  }
  // RFC 7519 section 4.1.3: "aud" is a string or an array of strings, and
  // the token is for us if any of them is our audience (exact comparison).
  if (options_.audience) {
    bool match = false;
    if (aud != nullptr && aud->is_string()) match = aud->as_string() == *options_.audience;
    if (aud != nullptr && aud->is_array()) {
      for (const json::value& a : aud->items()) match = match || a.as_string() == *options_.audience;
    }
    if (!match) return fail(jwt_error::wrong_audience, "aud does not match");
  }
  if (claims != nullptr) {
    for (std::size_t i = 0; i < options_.claim_headers.size(); ++i) {
      const json::value* v = payload.value().find(options_.claim_headers[i].claim);
      if (v == nullptr) continue;
      if (v->is_string() && !v->as_string().empty() && http::is_field_value(v->as_string())) claims->claim(i, v->as_string());
      if (v->is_number()) claims->claim(i, v->number_text());
      if (v->is_bool()) claims->claim(i, v->as_bool() ? "true" : "false");
    }
  }
  return jwt_result{};
}

}  // namespace gateway::middleware
