#include "gateway/middleware/jwks.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <array>
#include <cstdio>
#include <stdexcept>

#include "gateway/core/base64url.hpp"
#include "gateway/json/reader.hpp"

namespace gateway::middleware {

namespace {

constexpr std::array<std::string_view, 9> alg_names = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                                        "RS512", "ES256", "ES384", "EdDSA"};

struct ctx_deleter {
  void operator()(EVP_PKEY_CTX* c) const noexcept { EVP_PKEY_CTX_free(c); }
};
struct bld_deleter {
  void operator()(OSSL_PARAM_BLD* b) const noexcept { OSSL_PARAM_BLD_free(b); }
};
struct params_deleter {
  void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); }
};
struct bn_deleter {
  void operator()(BIGNUM* b) const noexcept { BN_free(b); }
};
using ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, ctx_deleter>;
using pkey_ptr = std::unique_ptr<evp_pkey_st, pkey_deleter>;

// Errors while reading one key, prefixed with where it is by the caller.
struct key_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A member that must be a base64url string; its decoded bytes.
std::string b64_member(const json::value& key, std::string_view name) {
  const json::value* v = key.find(name);
  if (v == nullptr) throw key_error(std::string(name) + " is missing");
  if (!v->is_string()) throw key_error(std::string(name) + " is not a string");
  std::string out;
  if (!core::base64url_decode(v->as_string(), out)) {
    throw key_error(std::string(name) + " is not base64url (RFC 7515 section 2: no padding)");
  }
  if (out.empty()) throw key_error(std::string(name) + " is empty");
  return out;
}

// Builds a public key of `type_name` from OpenSSL parameters, then runs
// OpenSSL's public-key check (an EC point on its curve and not at infinity,
// an odd RSA modulus and exponent).
pkey_ptr from_params(const char* type_name, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, params_deleter> params(OSSL_PARAM_BLD_to_param(bld));
  ctx_ptr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type_name, nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) throw std::runtime_error("libcrypto cannot build keys");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1 || raw == nullptr) {
    throw key_error("is not a valid public key");
  }
  pkey_ptr key(raw);
  ctx_ptr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) throw key_error("is not a valid public key");
  return key;
}

pkey_ptr rsa_key(const json::value& k) {
  const std::string n = b64_member(k, "n");
  const std::string e = b64_member(k, "e");
  std::unique_ptr<BIGNUM, bn_deleter> bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                                                     static_cast<int>(n.size()), nullptr));
  std::unique_ptr<BIGNUM, bn_deleter> bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                                                     static_cast<int>(e.size()), nullptr));
  if (!bn_n || !bn_e) throw std::bad_alloc();
  const int bits = BN_num_bits(bn_n.get());
  if (bits < 2048 || bits > 8192) {
    throw key_error("n has " + std::to_string(bits) + " bits; RSA keys must have 2048 to 8192");
  }
  if (BN_num_bits(bn_e.get()) > 64 || !BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get())) {
    throw key_error("e is not a usable public exponent");
  }
  std::unique_ptr<OSSL_PARAM_BLD, bld_deleter> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    throw std::bad_alloc();
  }
  return from_params("RSA", bld.get());
}

pkey_ptr ec_key(const json::value& k, const char* group, std::size_t coordinate_size) {
  const std::string x = b64_member(k, "x");
  const std::string y = b64_member(k, "y");
  // RFC 7518 section 6.2.1.2: each coordinate is the full size of the field.
  if (x.size() != coordinate_size || y.size() != coordinate_size) {
    throw key_error("x and y must be " + std::to_string(coordinate_size) + " bytes each for this curve");
  }
  std::string point = "\x04" + x + y;  // SEC 1 section 2.3.3, uncompressed
  std::unique_ptr<OSSL_PARAM_BLD, bld_deleter> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
    throw std::bad_alloc();
  }
  return from_params("EC", bld.get());
}

pkey_ptr ed25519_key(const json::value& k) {
  const std::string x = b64_member(k, "x");
  if (x.size() != 32) throw key_error("x must be 32 bytes for Ed25519");
  pkey_ptr key(EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr,
                                              reinterpret_cast<const unsigned char*>(x.data()), x.size()));
  if (!key) throw key_error("is not a valid Ed25519 public key");
  return key;
}

// A string member, or nullopt when absent; key_error when not a string.
std::optional<std::string_view> string_member(const json::value& k, std::string_view name) {
  const json::value* v = k.find(name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) throw key_error(std::string(name) + " is not a string");
  return v->as_string();
}

std::string_view type_name(jwk_type t) {
  switch (t) {
    case jwk_type::rsa: return "RSA";
    case jwk_type::ec_p256: return "EC P-256";
    case jwk_type::ec_p384: return "EC P-384";
    case jwk_type::ed25519: return "OKP Ed25519";
  }
  return "?";
}

// Reads one entry of "keys" into `out`; false when the key is one this
// gateway skips (see the header); key_error when it is wrong.
bool read_key(const json::value& k, jwk& out) {
  if (!k.is_object()) throw key_error("is not a JSON object");
  for (std::string_view unique : {"kty", "kid", "alg", "use", "crv", "n", "e", "x", "y"}) {
    std::size_t n = 0;
    for (const json::member& m : k.members()) n += m.key == unique;
    if (n > 1) throw key_error("has " + std::string(unique) + " twice");
  }
  if (const auto kid = string_member(k, "kid")) {
    if (kid->size() > jwk_set::max_kid_size) throw key_error("kid is longer than 256 bytes");
    // An empty kid would select like no kid at all, and several such keys
    // could not be told apart by a token: refused rather than guessed at.
    if (kid->empty()) throw key_error("kid is empty (leave the member out for a key without a kid)");
    out.kid = std::string(*kid);
  }
  const auto kty = string_member(k, "kty");
  if (!kty) throw key_error("kty is missing");
  if (const auto use = string_member(k, "use"); use && *use != "sig") return false;
  if (const json::value* ops = k.find("key_ops")) {
    if (!ops->is_array()) throw key_error("key_ops is not an array");
    bool verify = false;
    for (const json::value& op : ops->items()) verify = verify || (op.is_string() && op.as_string() == "verify");
    if (!verify) return false;
  }
  if (const auto alg = string_member(k, "alg")) {
    out.alg = parse_jws_alg(*alg);
    if (!out.alg || is_hmac(*out.alg)) return false;  // not an algorithm we verify with a public key
  }
  const auto crv = string_member(k, "crv");
  if (*kty == "RSA") {
    out.type = jwk_type::rsa;
  } else if (*kty == "EC" && crv == "P-256") {
    out.type = jwk_type::ec_p256;
  } else if (*kty == "EC" && crv == "P-384") {
    out.type = jwk_type::ec_p384;
  } else if (*kty == "OKP" && crv == "Ed25519") {
    out.type = jwk_type::ed25519;
  } else if ((*kty == "EC" || *kty == "OKP") && !crv) {
    throw key_error("crv is missing");
  } else {
    return false;  // "oct", another curve, another type
  }
  if (out.alg && !out.fits(*out.alg)) {
    throw key_error("alg " + std::string(to_string(*out.alg)) + " does not fit a key of type " +
                    std::string(type_name(out.type)));
  }
  switch (out.type) {
    case jwk_type::rsa: out.key = rsa_key(k); break;
    case jwk_type::ec_p256: out.key = ec_key(k, "P-256", 32); break;
    case jwk_type::ec_p384: out.key = ec_key(k, "P-384", 48); break;
    case jwk_type::ed25519: out.key = ed25519_key(k); break;
  }
  return true;
}

// Key ids in messages: printable ASCII only, so a file cannot put control
// bytes into the log.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += c >= 0x20 && c < 0x7f ? c : '?';
  if (s.size() > 64) out += "...";
  return out;
}

}  // namespace

void pkey_deleter::operator()(evp_pkey_st* p) const noexcept { EVP_PKEY_free(p); }

std::optional<jws_alg> parse_jws_alg(std::string_view name) noexcept {
  for (std::size_t i = 0; i < alg_names.size(); ++i)
    if (name == alg_names[i]) return static_cast<jws_alg>(i);
  return std::nullopt;
}

std::string_view to_string(jws_alg a) noexcept { return alg_names[static_cast<std::size_t>(a)]; }

bool jwk::fits(jws_alg a) const noexcept {
  if (alg && *alg != a) return false;
  switch (type) {
    case jwk_type::rsa: return a == jws_alg::rs256 || a == jws_alg::rs384 || a == jws_alg::rs512;
    case jwk_type::ec_p256: return a == jws_alg::es256;
    case jwk_type::ec_p384: return a == jws_alg::es384;
    case jwk_type::ed25519: return a == jws_alg::eddsa;
  }
  return false;
}

jwk_set jwk_set::parse(std::string_view text) {
  json::parse_options opts;
  opts.max_depth = 8;
  opts.max_size = max_file_size;
  const json::parse_result doc = json::parse(text, opts);
  if (!doc) {
    const auto& e = doc.error();
    throw std::invalid_argument("line " + std::to_string(e.line) + ", column " + std::to_string(e.column) + ": " +
                                e.message);
  }
  if (!doc.value().is_object()) throw std::invalid_argument("a JWK Set must be a JSON object with \"keys\"");
  const json::value* keys = doc.value().find("keys");
  if (keys == nullptr || !keys->is_array()) throw std::invalid_argument("\"keys\" must be an array of keys");
  if (keys->items().size() > max_keys) {
    throw std::invalid_argument("more than " + std::to_string(max_keys) + " keys");
  }
  jwk_set set;
  std::size_t index = 0;
  for (const json::value& k : keys->items()) {
    jwk key;
    try {
      if (read_key(k, key)) {
        for (const jwk& other : set.keys_) {
          if (!key.kid.empty() && other.kid == key.kid) throw key_error("repeats the kid of another key");
        }
        set.keys_.push_back(std::move(key));
      } else {
        ++set.ignored_;
      }
    } catch (const key_error& e) {
      std::string where = "keys[" + std::to_string(index) + "]";
      if (!key.kid.empty()) where += " (kid \"" + printable(key.kid) + "\")";
      throw std::invalid_argument(where + ": " + e.what());
    }
    ++index;
  }
  if (set.keys_.empty()) {
    throw std::invalid_argument("no usable key (" + std::to_string(set.ignored_) +
                                " ignored: RSA, EC P-256/P-384 and OKP Ed25519 signature keys are used)");
  }
  return set;
}

jwk_set jwk_set::load(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw std::runtime_error(path + ": cannot open the JWK Set file");
  std::string text;
  char buf[16384];
  for (;;) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, f.get());
    text.append(buf, n);
    if (text.size() > max_file_size) throw std::runtime_error(path + ": larger than 1 MiB");
    if (n < sizeof buf) break;
  }
  if (std::ferror(f.get())) throw std::runtime_error(path + ": read error");
  try {
    return parse(text);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

jwk_set::selection jwk_set::select(jws_alg alg, const std::string_view* kid) const noexcept {
  if (kid != nullptr) {
    // A key without a kid is never named by one, not even by "": a token
    // with "kid":"" names no key (parse() refuses an empty kid in the set).
    for (const jwk& k : keys_) {
      if (!k.kid.empty() && k.kid == *kid) return {k.fits(alg) ? &k : nullptr, k.fits(alg) ? outcome::found : outcome::wrong_alg};
    }
    return {nullptr, outcome::unknown_kid};
  }
  const jwk* found = nullptr;
  for (const jwk& k : keys_) {
    if (!k.fits(alg)) continue;
    if (found != nullptr) return {nullptr, outcome::ambiguous};
    found = &k;
  }
  return {found, found ? outcome::found : outcome::no_key};
}

std::string jwk_set::describe() const {
  std::string s = std::to_string(keys_.size()) + (keys_.size() == 1 ? " key (" : " keys (");
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (i > 0) s += ", ";
    s += keys_[i].kid.empty() ? "no kid" : "kid \"" + printable(keys_[i].kid) + "\"";
    s += " ";
    s += keys_[i].alg ? to_string(*keys_[i].alg) : type_name(keys_[i].type);
  }
  s += ")";
  if (ignored_ > 0) s += ", " + std::to_string(ignored_) + " ignored";
  return s;
}

}  // namespace gateway::middleware
