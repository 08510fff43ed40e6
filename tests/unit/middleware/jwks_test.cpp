#include "gateway/middleware/jwks.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

#include "gateway/core/base64url.hpp"
#include "tests/support/jwt_keys.hpp"

using gateway::middleware::jwk_set;
using gateway::middleware::jwk_type;
using gateway::middleware::jws_alg;
using gateway::test::jwk_set_json;
using gateway::test::signing_key;

namespace {

// Keys are generated once per process: RSA key generation takes a while.
const signing_key& rsa() {
  static const signing_key k = signing_key::generate("RSA");
  return k;
}
const signing_key& p256() {
  static const signing_key k = signing_key::generate("P-256");
  return k;
}
const signing_key& p384() {
  static const signing_key k = signing_key::generate("P-384");
  return k;
}
const signing_key& ed25519() {
  static const signing_key k = signing_key::generate("Ed25519");
  return k;
}

// The message parse() throws for `text`, or "" when it parses.
std::string parse_error(const std::string& text) {
  try {
    (void)jwk_set::parse(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// `jwk` with member `name` replaced by `value` (a JSON value's text).
std::string with_member(std::string jwk, const std::string& name, const std::string& value) {
  const std::string key = "\"" + name + "\":";
  const auto at = jwk.find(key);
  REQUIRE(at != std::string::npos);
  const auto start = at + key.size();
  const auto end = jwk[start] == '"' ? jwk.find('"', start + 1) + 1 : jwk.find_first_of(",}", start);
  return jwk.replace(start, end - start, value);
}

std::string member_text(const std::string& jwk, const std::string& name) {
  const std::string key = "\"" + name + "\":\"";
  const auto at = jwk.find(key) + key.size();
  return jwk.substr(at, jwk.find('"', at) - at);
}

}  // namespace

TEST_CASE("jwk set reads RSA, EC P-256, EC P-384 and Ed25519 public keys", "[unit][middleware][jwt]") {
  const jwk_set set = jwk_set::parse(jwk_set_json({rsa().jwk("r", "RS256"), p256().jwk("e"), p384().jwk("e3", "ES384"),
                                                   ed25519().jwk("", "EdDSA")}));
  REQUIRE(set.keys().size() == 4);
  CHECK(set.ignored() == 0);
  CHECK(set.keys()[0].type == jwk_type::rsa);
  CHECK(set.keys()[0].kid == "r");
  CHECK(set.keys()[0].alg == jws_alg::rs256);
  CHECK(set.keys()[1].type == jwk_type::ec_p256);
  CHECK_FALSE(set.keys()[1].alg.has_value());
  CHECK(set.keys()[2].type == jwk_type::ec_p384);
  CHECK(set.keys()[3].type == jwk_type::ed25519);
  CHECK(set.keys()[3].kid.empty());
  for (const auto& k : set.keys()) CHECK(k.key != nullptr);
  CHECK(set.describe() == R"(4 keys (kid "r" RS256, kid "e" EC P-256, kid "e3" ES384, no kid EdDSA))");
}

TEST_CASE("jwk set: a key's type and alg decide the algorithms it verifies", "[unit][middleware][jwt]") {
  const jwk_set set = jwk_set::parse(jwk_set_json({rsa().jwk("r"), rsa().jwk("r256", "RS256"), p256().jwk("e")}));
  const auto& any_rsa = set.keys()[0];
  for (jws_alg a : {jws_alg::rs256, jws_alg::rs384, jws_alg::rs512}) CHECK(any_rsa.fits(a));
  for (jws_alg a : {jws_alg::hs256, jws_alg::hs512, jws_alg::es256, jws_alg::es384, jws_alg::eddsa})
    CHECK_FALSE(any_rsa.fits(a));
  CHECK(set.keys()[1].fits(jws_alg::rs256));
  CHECK_FALSE(set.keys()[1].fits(jws_alg::rs512));
  CHECK(set.keys()[2].fits(jws_alg::es256));
  CHECK_FALSE(set.keys()[2].fits(jws_alg::es384));
  CHECK_FALSE(set.keys()[2].fits(jws_alg::hs256));

  const std::string_view r = "r", e = "e", nobody = "nobody";
  CHECK(set.select(jws_alg::rs512, &r).key == &set.keys()[0]);
  CHECK(set.select(jws_alg::es256, &r).why == jwk_set::outcome::wrong_alg);
  CHECK(set.select(jws_alg::es256, &e).key == &set.keys()[2]);
  CHECK(set.select(jws_alg::rs256, &nobody).why == jwk_set::outcome::unknown_kid);
  // Without a kid: exactly one key must fit.
  CHECK(set.select(jws_alg::es256, nullptr).key == &set.keys()[2]);
  CHECK(set.select(jws_alg::rs384, nullptr).key == &set.keys()[0]);  // r256 is RS256 only
  CHECK(set.select(jws_alg::rs256, nullptr).why == jwk_set::outcome::ambiguous);
  CHECK(set.select(jws_alg::eddsa, nullptr).why == jwk_set::outcome::no_key);
  CHECK(set.select(jws_alg::hs256, nullptr).why == jwk_set::outcome::no_key);
}

TEST_CASE("jwk set: an empty kid selects no key, and a key whose kid is empty is refused", "[unit][middleware][jwt]") {
  // Keys without a kid: a token naming kid "" is not one of them (RFC 7515
  // section 4.1.4: the kid is matched, and no key has "").
  const jwk_set set = jwk_set::parse(jwk_set_json({rsa().jwk(""), p256().jwk(""), rsa().jwk("r", "RS512")}));
  const std::string_view empty;
  CHECK(set.select(jws_alg::rs256, &empty).why == jwk_set::outcome::unknown_kid);
  CHECK(set.select(jws_alg::rs256, &empty).key == nullptr);
  CHECK(set.select(jws_alg::es256, &empty).why == jwk_set::outcome::unknown_kid);
  CHECK(set.select(jws_alg::rs256, nullptr).key == &set.keys()[0]);  // no kid: the one key that fits
  // A key set cannot hold an empty kid: it would be a key with no kid for
  // selection, and two of them would not be told apart by any token.
  const std::string r = rsa().jwk("r");
  CHECK(parse_error(jwk_set_json({with_member(r, "kid", R"("")")})) ==
        "keys[0]: kid is empty (leave the member out for a key without a kid)");
  CHECK(parse_error(jwk_set_json({p256().jwk("e"), with_member(r, "kid", R"("")")})) ==
        "keys[1]: kid is empty (leave the member out for a key without a kid)");
}

TEST_CASE("jwk set skips keys it cannot use and counts them", "[unit][middleware][jwt]") {
  const std::string ok = rsa().jwk("r");
  const std::vector<std::string> skipped = {
      R"({"kty":"oct","k":"c2VjcmV0","kid":"h"})",
      with_member(rsa().jwk("enc"), "kty", R"("RSA","use":"enc")"),
      with_member(rsa().jwk("ops"), "kty", R"("RSA","key_ops":["encrypt"])"),
      rsa().jwk("ps", "PS256"),
      rsa().jwk("oaep", "RSA-OAEP"),
      rsa().jwk("hs", "HS256"),
      R"({"kty":"OKP","crv":"X25519","x":"AAAA"})",
      R"({"kty":"EC","crv":"P-521","x":"AAAA","y":"AAAA"})",
      R"({"kty":"XYZ"})",
  };
  std::vector<std::string> all = skipped;
  all.push_back(ok);
  const jwk_set set = jwk_set::parse(jwk_set_json(all));
  CHECK(set.keys().size() == 1);
  CHECK(set.ignored() == skipped.size());
  CHECK(set.describe() == R"(1 key (kid "r" RSA), 9 ignored)");
  // "use": "sig" and "key_ops" with "verify" are used.
  const jwk_set signing = jwk_set::parse(jwk_set_json(
      {with_member(rsa().jwk("s"), "kty", R"("RSA","use":"sig","key_ops":["verify"])")}));
  CHECK(signing.keys().size() == 1);

  // Only unusable keys: an error that says what is used.
  const std::string none = parse_error(jwk_set_json(skipped));
  CHECK(none.find("no usable key (9 ignored") == 0);
}

TEST_CASE("jwk set refuses bad documents and bad keys, naming the key", "[unit][middleware][jwt]") {
  CHECK(parse_error("").find("line 1, column 1") == 0);
  CHECK(parse_error("{\"keys\":[}").find("line 1, column 10") == 0);
  CHECK(parse_error("[]") == "a JWK Set must be a JSON object with \"keys\"");
  CHECK(parse_error("{}") == "\"keys\" must be an array of keys");
  CHECK(parse_error(R"({"keys":{}})") == "\"keys\" must be an array of keys");
  CHECK(parse_error(R"({"keys":[]})").find("no usable key") == 0);
  CHECK(parse_error(R"({"keys":[1]})") == "keys[0]: is not a JSON object");
  CHECK(parse_error(R"({"keys":[{"kid":"a"}]})") == "keys[0] (kid \"a\"): kty is missing");
  CHECK(parse_error(R"({"keys":[{"kty":1}]})") == "keys[0]: kty is not a string");
  CHECK(parse_error(R"({"keys":[{"kty":"RSA","kid":7}]})") == "keys[0]: kid is not a string");

  const std::string r = rsa().jwk("r");
  const std::string n = member_text(r, "n");
  CHECK(parse_error(jwk_set_json({with_member(r, "n", "\"" + n + "=\"")})) ==
        "keys[0] (kid \"r\"): n is not base64url (RFC 7515 section 2: no padding)");
  CHECK(parse_error(jwk_set_json({with_member(r, "n", "\"" + n.substr(0, 10) + "+/\"")})).find("n is not base64url") !=
        std::string::npos);
  CHECK(parse_error(jwk_set_json({with_member(r, "n", "\"\"")})) == "keys[0] (kid \"r\"): n is empty");
  CHECK(parse_error(jwk_set_json({with_member(r, "n", "17")})) == "keys[0] (kid \"r\"): n is not a string");
  CHECK(parse_error(R"({"keys":[{"kty":"RSA","e":"AQAB"}]})") == "keys[0]: n is missing");
  CHECK(parse_error(jwk_set_json({with_member(r, "e", "\"AQAA\"")})) ==
        "keys[0] (kid \"r\"): e is not a usable public exponent");  // even
  CHECK(parse_error(jwk_set_json({with_member(r, "e", "\"AQ\"")})) ==
        "keys[0] (kid \"r\"): e is not a usable public exponent");  // 1
  // A 1024-bit modulus is too short (RFC 7518 section 3.3).
  const std::string short_n = gateway::core::base64url_encode(std::string(128, '\xc1'));
  CHECK(parse_error(jwk_set_json({with_member(r, "n", "\"" + short_n + "\"")})) ==
        "keys[0] (kid \"r\"): n has 1024 bits; RSA keys must have 2048 to 8192");
  const std::string even_n = gateway::core::base64url_encode(std::string(255, '\xc1') + '\x02');
  CHECK(parse_error(jwk_set_json({with_member(r, "n", "\"" + even_n + "\"")})) ==
        "keys[0] (kid \"r\"): is not a valid public key");

  // EC: a point off the curve, short coordinates, a missing curve.
  const std::string e = p256().jwk("e");
  std::string y = gateway::core::base64url_encode(std::string(32, '\x01'));
  CHECK(parse_error(jwk_set_json({with_member(e, "y", "\"" + y + "\"")})) == "keys[0] (kid \"e\"): is not a valid public key");
  const std::string short_x = gateway::core::base64url_encode(std::string(31, '\x01'));
  CHECK(parse_error(jwk_set_json({with_member(e, "x", "\"" + short_x + "\"")})) ==
        "keys[0] (kid \"e\"): x and y must be 32 bytes each for this curve");
  CHECK(parse_error(R"({"keys":[{"kty":"EC","x":"AA","y":"AA"}]})") == "keys[0]: crv is missing");
  CHECK(parse_error(jwk_set_json({with_member(ed25519().jwk("o"), "x", "\"" + short_x + "\"")})) ==
        "keys[0] (kid \"o\"): x must be 32 bytes for Ed25519");

  // An "alg" that does not fit the key's type is a mistake, not a skip.
  CHECK(parse_error(jwk_set_json({rsa().jwk("r", "ES256")})) ==
        "keys[0] (kid \"r\"): alg ES256 does not fit a key of type RSA");
  CHECK(parse_error(jwk_set_json({p256().jwk("e", "ES384")})) ==
        "keys[0] (kid \"e\"): alg ES384 does not fit a key of type EC P-256");
  CHECK(parse_error(jwk_set_json({ed25519().jwk("o", "RS256")})) ==
        "keys[0] (kid \"o\"): alg RS256 does not fit a key of type OKP Ed25519");

  // Key ids: unique, bounded, printed safely.
  CHECK(parse_error(jwk_set_json({rsa().jwk("a"), p256().jwk("b"), p256().jwk("a")})) ==
        "keys[2] (kid \"a\"): repeats the kid of another key");
  CHECK(parse_error(jwk_set_json({rsa().jwk(std::string(257, 'k'))})) == "keys[0]: kid is longer than 256 bytes");
  CHECK(parse_error(jwk_set_json({rsa().jwk("a\\nb", "ES256")})) ==
        "keys[0] (kid \"a?b\"): alg ES256 does not fit a key of type RSA");
  CHECK(parse_error(jwk_set_json({with_member(r, "kty", R"("RSA","kty":"EC")")})) == "keys[0]: has kty twice");

  // At most max_keys keys.
  std::vector<std::string> many(jwk_set::max_keys + 1, R"({"kty":"oct"})");
  CHECK(parse_error(jwk_set_json(many)) == "more than 256 keys");

  // Private members are ignored: only the public half is used.
  CHECK(parse_error(jwk_set_json({with_member(r, "kty", R"("RSA","d":"AAAA","p":"AAAA")")})).empty());
}

TEST_CASE("jwk set files: unreadable, oversized and bad files name the path", "[unit][middleware][jwt]") {
  char name[] = "/tmp/gateway-jwks-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  ::close(fd);
  const std::string path = name;

  std::ofstream(path) << jwk_set_json({p256().jwk("e")});
  CHECK(jwk_set::load(path).keys().size() == 1);

  const auto load_error = [](const std::string& p) -> std::string {
    try {
      (void)jwk_set::load(p);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  };
  std::ofstream(path) << "{\"keys\": [";
  CHECK(load_error(path).find(path + ": line 1, column ") == 0);
  std::ofstream(path) << std::string(jwk_set::max_file_size + 1, ' ');
  CHECK(load_error(path) == path + ": larger than 1 MiB");
  CHECK(load_error(path + ".missing") == path + ".missing: cannot open the JWK Set file");
  std::remove(path.c_str());
}
