#include "tests/support/jwt_keys.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <stdexcept>

#include "gateway/core/base64url.hpp"

namespace gateway::test {

namespace {

std::string b64(std::string_view s) { return core::base64url_encode(s); }

std::string bn_bytes(const EVP_PKEY* key, const char* name, int pad) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) throw std::runtime_error("cannot read a key parameter");
  std::string out(static_cast<std::size_t>(pad > 0 ? pad : BN_num_bytes(bn)), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  BN_free(bn);
  return out;
}

const char* digest_of(std::string_view alg) {
  if (alg == "RS256" || alg == "ES256") return "SHA256";
  if (alg == "RS384" || alg == "ES384") return "SHA384";
  if (alg == "RS512") return "SHA512";
  return nullptr;  // EdDSA
}

}  // namespace

void signing_key::deleter::operator()(evp_pkey_st* p) const noexcept { EVP_PKEY_free(p); }

signing_key signing_key::generate(std::string_view type) {
  EVP_PKEY* k = nullptr;
  if (type == "RSA") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048));
  else if (type == "P-256") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  else if (type == "P-384") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
  else if (type == "Ed25519") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (k == nullptr) throw std::runtime_error("cannot generate a " + std::string(type) + " key");
  signing_key out;
  out.type_ = std::string(type);
  out.key_.reset(k, deleter{});
  return out;
}

std::string signing_key::jwk(std::string_view kid, std::string_view alg) const {
  std::string j = "{";
  if (type_ == "RSA") {
    j += R"("kty":"RSA","n":")" + b64(bn_bytes(key_.get(), OSSL_PKEY_PARAM_RSA_N, 0)) + R"(","e":")" +
         b64(bn_bytes(key_.get(), OSSL_PKEY_PARAM_RSA_E, 0)) + "\"";
  } else if (type_ == "P-256" || type_ == "P-384") {
    const int size = type_ == "P-256" ? 32 : 48;
    j += R"("kty":"EC","crv":")" + type_ + R"(","x":")" + b64(bn_bytes(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X, size)) +
         R"(","y":")" + b64(bn_bytes(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y, size)) + "\"";
  } else {
    unsigned char raw[32];
    std::size_t len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key_.get(), raw, &len) != 1) throw std::runtime_error("no raw Ed25519 key");
    j += R"("kty":"OKP","crv":"Ed25519","x":")" + b64(std::string_view(reinterpret_cast<char*>(raw), len)) + "\"";
  }
  if (!kid.empty()) j += R"(,"kid":")" + std::string(kid) + "\"";
  if (!alg.empty()) j += R"(,"alg":")" + std::string(alg) + "\"";
  return j + "}";
}

std::string signing_key::sign(std::string_view alg, std::string_view input) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::string sig;
  std::size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  bool ok = EVP_DigestSignInit_ex(ctx, nullptr, digest_of(alg), nullptr, nullptr, key_.get(), nullptr) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len, data, input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, data, input.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) throw std::runtime_error("cannot sign with " + std::string(alg));
  if (alg == "ES256" || alg == "ES384") {
    // DER Ecdsa-Sig-Value -> R || S, each padded to the curve's size.
    const int size = alg == "ES256" ? 32 : 48;
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (es == nullptr) throw std::runtime_error("cannot read an ECDSA signature");
    std::string raw(static_cast<std::size_t>(2 * size), '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), size);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + size, size);
    ECDSA_SIG_free(es);
    return raw;
  }
  return sig;
}

std::string signing_key::token(std::string_view alg, std::string_view kid, std::string_view payload_json) const {
  std::string header = R"({"alg":")" + std::string(alg) + "\"";
  if (!kid.empty()) header += R"(,"kid":")" + std::string(kid) + "\"";
  header += "}";
  const std::string input = b64(header) + "." + b64(payload_json);
  return input + "." + b64(sign(alg, input));
}

std::string signing_key::public_der() const {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key_.get(), &der);
  if (len <= 0) throw std::runtime_error("cannot encode the public key");
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string jwk_set_json(const std::vector<std::string>& keys) {
  std::string j = R"({"keys":[)";
  for (std::size_t i = 0; i < keys.size(); ++i) j += (i ? "," : "") + keys[i];
  return j + "]}";
}

std::string compact_token(std::string_view header_json, std::string_view payload_json, std::string_view signature) {
  return b64(header_json) + "." + b64(payload_json) + "." + b64(signature);
}

}  // namespace gateway::test
