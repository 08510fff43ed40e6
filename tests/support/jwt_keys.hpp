#pragma once
// Test support for JWTs signed with public-key algorithms: keys generated in
// the test (no key files checked in), their public JWKs (RFC 7517) as the
// --jwt-jwks file holds them, and tokens signed with them the way an
// identity provider does (RFC 7515 compact serialisation; ECDSA as R || S).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct evp_pkey_st;

namespace gateway::test {

class signing_key {
 public:
  // type: "RSA" (2048 bits), "P-256", "P-384" or "Ed25519". Throws on a
  // libcrypto failure.
  static signing_key generate(std::string_view type);

  // The public key as a JWK object; "kid" and "alg" only when not empty.
  std::string jwk(std::string_view kid, std::string_view alg = {}) const;
  // The JWS signature of `input` for `alg` (RS256/384/512, ES256/384, EdDSA).
  std::string sign(std::string_view alg, std::string_view input) const;
  // A compact token: header {"alg":alg[,"kid":kid]} and `payload_json`.
  std::string token(std::string_view alg, std::string_view kid, std::string_view payload_json) const;
  // The public key's DER (SubjectPublicKeyInfo), as an attacker would find it.
  std::string public_der() const;

 private:
  struct deleter {
    void operator()(evp_pkey_st* p) const noexcept;
  };
  std::string type_;
  std::shared_ptr<evp_pkey_st> key_;
};

// {"keys":[...]} from JWK objects.
std::string jwk_set_json(const std::vector<std::string>& keys);

// A compact token whose three parts are given (header and payload as JSON,
// the signature as bytes): for tokens that lie.
std::string compact_token(std::string_view header_json, std::string_view payload_json, std::string_view signature);

}  // namespace gateway::test
