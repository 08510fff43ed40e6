#include "gateway/middleware/jwt.hpp"

#include "gateway/core/ascii.hpp"
#include "gateway/json/reader.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <utility>

namespace gateway::middleware {

namespace {

// ---------------------------------------------------------------------------
// base64url (RFC 4648 section 5) as JWS uses it (RFC 7515 section 2): no
// padding, no whitespace, no characters outside the url-safe alphabet. The
// unused low bits of the last character must be zero, so that every byte
// string has exactly one accepted encoding (no malleable signatures).

constexpr std::array<std::int8_t, 256> make_base64url_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 26; ++i) {
    t[static_cast<std::size_t>('A' + i)] = static_cast<std::int8_t>(i);
    t[static_cast<std::size_t>('a' + i)] = static_cast<std::int8_t>(26 + i);
  }
  for (int i = 0; i < 10; ++i) t[static_cast<std::size_t>('0' + i)] = static_cast<std::int8_t>(52 + i);
  t[static_cast<std::size_t>('-')] = 62;
  t[static_cast<std::size_t>('_')] = 63;
  return t;
}

constexpr auto base64url_table = make_base64url_table();

bool base64url_decode(std::string_view in, std::string& out) {
  out.clear();
  const std::size_t tail = in.size() % 4;
  if (tail == 1) return false;  // a lone 6-bit group encodes no byte
  out.resize(in.size() / 4 * 3 + (tail == 0 ? 0 : tail - 1));
  const auto sextet = [&](std::size_t i, bool& bad) {
    const int v = base64url_table[static_cast<unsigned char>(in[i])];
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

// Header and payload are parsed by the gateway's strict RFC 8259 reader
// (UTF-8 checked, lone surrogates refused); the nesting cap keeps the DOM of
// an 8 KiB token small. Duplicate member names among those we look at are
// refused: RFC 7515 section 4 and RFC 7519 section 4 allow a parser to reject
// them, and "first wins" vs "last wins" would let two parsers disagree about
// which "exp" or "alg" a token carries.
constexpr json::parse_options token_json_options{.max_depth = 32, .max_size = jwt_verifier::max_token_size};

// The member named `key` of `object`, or nullptr; `duplicate` is set if it
// occurs more than once.
const json::value* unique_member(const json::value& object, std::string_view key, bool& duplicate) {
  const json::value* found = nullptr;
  for (const json::member& m : object.members()) {
    if (m.key != key) continue;
    if (found != nullptr) duplicate = true;
    found = &m.value;
  }
  return found;
}

bool is_string_array(const json::value& v) {
  if (!v.is_array()) return false;
  for (const json::value& item : v.items()) {
    if (!item.is_string()) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------

using core::iequals_ascii;

constexpr std::array<std::string_view, 3> hmac_algs = {"HS256", "HS384", "HS512"};
constexpr std::array<const char*, 3> hmac_digests = {"SHA256", "SHA384", "SHA512"};
constexpr std::array<std::size_t, 3> hmac_sizes = {32, 48, 64};

jwt_result fail(jwt_error e, std::string_view reason) { return jwt_result{e, reason}; }

}  // namespace

std::string_view to_string(jwt_error e) noexcept {
  switch (e) {
    case jwt_error::none: return "ok";
    case jwt_error::malformed: return "malformed";
    case jwt_error::bad_signature: return "bad_signature";
    case jwt_error::alg_not_allowed: return "alg_not_allowed";
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
          OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(hmac_digests[i]), 0),
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

jwt_verifier::jwt_verifier(jwt_options options) : options_(std::move(options)) {
  if (options_.leeway.count() < 0) options_.leeway = std::chrono::seconds{0};
  if (!options_.secret.empty()) macs_ = std::make_unique<keyed_macs>(options_.secret);
}

jwt_verifier::~jwt_verifier() = default;
jwt_verifier::jwt_verifier(jwt_verifier&&) noexcept = default;
jwt_verifier& jwt_verifier::operator=(jwt_verifier&&) noexcept = default;

jwt_result jwt_verifier::verify(std::string_view token, std::chrono::system_clock::time_point now) const {
  if (!macs_) return fail(jwt_error::bad_signature, "no JWT secret configured");
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

  // The header decides only which of our three HMACs to run; the key never
  // comes from the token (no "jwk", "jku", "kid" lookups), so a token signed
  // with "RS256" and our secret as the "public key" is refused here.
  std::size_t alg = hmac_algs.size();
  {
    const json::parse_result header = json::parse(buffer, token_json_options);
    if (!header || !header.value().is_object()) return fail(jwt_error::malformed, "header is not a JSON object");
    bool duplicate = false;
    const json::value* alg_field = unique_member(header.value(), "alg", duplicate);
    const json::value* crit = unique_member(header.value(), "crit", duplicate);
    if (duplicate) return fail(jwt_error::malformed, "duplicate header member");
    if (alg_field == nullptr) return fail(jwt_error::alg_not_allowed, "alg missing");
    if (!alg_field->is_string()) return fail(jwt_error::alg_not_allowed, "alg is not a string");
    if (crit != nullptr) return fail(jwt_error::malformed, "crit header not supported");
    // "alg" values are case-sensitive (RFC 7515 section 4.1.1), so "hs256"
    // is refused too; "none" is named in the reason whatever its spelling.
    const std::string_view alg_name = alg_field->as_string();
    if (iequals_ascii(alg_name, "none")) return fail(jwt_error::alg_not_allowed, "alg none not allowed");
    for (std::size_t i = 0; i < hmac_algs.size(); ++i) {
      if (alg_name == hmac_algs[i]) alg = i;
    }
    if (alg == hmac_algs.size()) return fail(jwt_error::alg_not_allowed, "alg is not HS256, HS384 or HS512");
  }

  // Signature before the payload is parsed: no claim of an unauthenticated
  // token is looked at.
  if (!base64url_decode(signature_b64, buffer)) return fail(jwt_error::malformed, "signature is not base64url");
  if (buffer.size() != hmac_sizes[alg]) return fail(jwt_error::bad_signature, "signature has the wrong length");
  std::array<unsigned char, 64> expected{};
  std::size_t expected_len = 0;
  if (!macs_->compute(alg, token.substr(0, dot2), expected, expected_len)) {
    return fail(jwt_error::bad_signature, "HMAC computation failed");
  }
  if (CRYPTO_memcmp(expected.data(), buffer.data(), expected_len) != 0) {
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
  return jwt_result{};
}

}  // namespace gateway::middleware
