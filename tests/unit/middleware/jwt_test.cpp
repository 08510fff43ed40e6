#include "gateway/middleware/jwt.hpp"

#include <catch2/catch.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using gateway::middleware::jwt_error;
using gateway::middleware::jwt_options;
using gateway::middleware::jwt_result;
using gateway::middleware::jwt_verifier;

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::system_clock;

constexpr std::int64_t now_epoch = 1'700'000'000;
const clock_type::time_point now_tp{std::chrono::seconds{now_epoch}};
const std::string secret = "a-secret-key-of-thirty-two-bytes";

std::string base64url(std::string_view in) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(in[k]); };
  for (; i + 3 <= in.size(); i += 3) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (in.size() - i == 1) {
    const unsigned v = byte(i) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
  } else if (in.size() - i == 2) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
  }
  return out;
}

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
               data.size(), buf, &len) != nullptr);
  return std::string(reinterpret_cast<const char*>(buf), len);
}

// Signs header.payload with HMAC(md, key); the header is used verbatim, so
// tests can lie in it ("alg":"RS256" with an HMAC signature).
std::string make_token(std::string_view header_json, std::string_view payload_json,
                       const EVP_MD* md = EVP_sha256(), std::string_view key = secret) {
  std::string input = base64url(header_json) + "." + base64url(payload_json);
  return input + "." + base64url(hmac(md, key, input));
}

std::string hs256(std::string_view payload_json) {
  return make_token(R"({"alg":"HS256","typ":"JWT"})", payload_json);
}

std::string exp_claim(std::int64_t offset) {
  return R"({"sub":"user-1","exp":)" + std::to_string(now_epoch + offset) + "}";
}

jwt_verifier make_verifier(jwt_options o = {}) {
  if (o.secret.empty()) o.secret = secret;
  return jwt_verifier(std::move(o));
}

// Replaces character `i` of `s` by another valid base64url character that
// keeps the encoding canonical when i is not the last one.
std::string flip(std::string s, std::size_t i) {
  s[i] = s[i] == 'A' ? 'B' : 'A';
  return s;
}

}  // namespace

TEST_CASE("jwt verifier accepts valid HS256, HS384 and HS512 tokens", "[unit][middleware][jwt]") {
  const auto v = make_verifier();
  const std::string payload = exp_claim(3600);
  const std::string t256 = make_token(R"({"alg":"HS256","typ":"JWT"})", payload, EVP_sha256());
  const std::string t384 = make_token(R"({"alg":"HS384","typ":"JWT"})", payload, EVP_sha384());
  const std::string t512 = make_token(R"({"alg":"HS512","typ":"JWT"})", payload, EVP_sha512());
  for (const auto& t : {t256, t384, t512}) {
    const jwt_result r = v.verify(t, now_tp);
    INFO(t << " -> " << r.reason);
    CHECK(r.ok());
    CHECK(static_cast<bool>(r));
    CHECK(r.error == jwt_error::none);
  }
  // The signature length must match the declared algorithm.
  const std::string mixed = make_token(R"({"alg":"HS256"})", payload, EVP_sha512());
  CHECK(v.verify(mixed, now_tp).error == jwt_error::bad_signature);
  const std::string mixed2 = make_token(R"({"alg":"HS512"})", payload, EVP_sha256());
  CHECK(v.verify(mixed2, now_tp).error == jwt_error::bad_signature);
}

TEST_CASE("jwt verifier accepts a token without exp or nbf and with whitespace and unknown members", "[unit][middleware][jwt]") {
  const auto v = make_verifier();
  CHECK(v.verify(hs256("{}"), now_tp).ok());
  CHECK(v.verify(make_token(" {\n\t\"typ\" : \"JWT\" , \"alg\" : \"HS256\", \"kid\": [1, {\"a\": null}] } ",
                            R"({"n":[true,false,null,-1.5e3,{"x":{}}],"s":"\u00e9\ud83d\ude00 \"q\""})"),
                 now_tp)
            .ok());
  // "alg" spelled with escapes is still "HS256".
  CHECK(v.verify(make_token(R"({"alg":"HS\u0032\u0035\u0036"})", "{}"), now_tp).ok());
  // Raw UTF-8 in strings is fine.
  CHECK(v.verify(hs256("{\"name\":\"J\xc3\xa9r\xc3\xb4me \xf0\x9f\x98\x80\"}"), now_tp).ok());
}

TEST_CASE("jwt verifier checks exp with the leeway at its edges", "[unit][middleware][jwt]") {
  const auto v = make_verifier();  // leeway 30 s
  CHECK(v.verify(hs256(exp_claim(-31)), now_tp).error == jwt_error::expired);
  CHECK(v.verify(hs256(exp_claim(-30)), now_tp).error == jwt_error::expired);  // now == exp + leeway
  CHECK(v.verify(hs256(exp_claim(-29)), now_tp).ok());
  CHECK(v.verify(hs256(exp_claim(0)), now_tp).ok());
  CHECK(v.verify(hs256(R"({"exp":)" + std::to_string(now_epoch - 30) + ".5}"), now_tp).ok());
  CHECK(v.verify(hs256(R"({"exp":)" + std::to_string(now_epoch - 30) + ".5}"), now_tp + 500ms).error ==
        jwt_error::expired);
  CHECK(v.verify(hs256(R"({"exp":1.6e9})"), now_tp).error == jwt_error::expired);

  const auto strict = make_verifier(jwt_options{secret, 0s, {}, {}});
  CHECK(strict.verify(hs256(exp_claim(0)), now_tp).error == jwt_error::expired);  // "MUST be before"
  CHECK(strict.verify(hs256(exp_claim(1)), now_tp).ok());
  CHECK(strict.verify(hs256(exp_claim(1)), now_tp + 999ms).ok());
  CHECK(strict.verify(hs256(exp_claim(1)), now_tp + 1s).error == jwt_error::expired);

  const auto r = v.verify(hs256(exp_claim(-3600)), now_tp);
  CHECK(r.reason == "token expired");
  CHECK(gateway::middleware::to_string(r.error) == "expired");
}

TEST_CASE("jwt verifier checks nbf with the leeway at its edges", "[unit][middleware][jwt]") {
  const auto nbf = [](std::int64_t offset) {
    return hs256(R"({"nbf":)" + std::to_string(now_epoch + offset) + "}");
  };
  const auto v = make_verifier();  // leeway 30 s
  CHECK(v.verify(nbf(3600), now_tp).error == jwt_error::not_yet_valid);
  CHECK(v.verify(nbf(31), now_tp).error == jwt_error::not_yet_valid);
  CHECK(v.verify(nbf(30), now_tp).ok());
  CHECK(v.verify(nbf(0), now_tp).ok());
  CHECK(v.verify(nbf(-100), now_tp).ok());

  const auto strict = make_verifier(jwt_options{secret, 0s, {}, {}});
  CHECK(strict.verify(nbf(0), now_tp).ok());  // "after or equal to"
  CHECK(strict.verify(nbf(1), now_tp).error == jwt_error::not_yet_valid);
  CHECK(strict.verify(nbf(1), now_tp + 1s).ok());

  // Both claims: a window.
  const std::string both = hs256(R"({"nbf":)" + std::to_string(now_epoch + 100) +
                                 R"(,"exp":)" + std::to_string(now_epoch + 200) + "}");
  CHECK(strict.verify(both, now_tp).error == jwt_error::not_yet_valid);
  CHECK(strict.verify(both, now_tp + 150s).ok());
  CHECK(strict.verify(both, now_tp + 200s).error == jwt_error::expired);
}

TEST_CASE("jwt verifier refuses tampered payloads and signatures and the wrong secret", "[unit][middleware][jwt]") {
  const auto v = make_verifier();
  const std::string good = hs256(R"({"sub":"user-1","role":"reader"})");
  REQUIRE(v.verify(good, now_tp).ok());
  const std::size_t dot1 = good.find('.');
  const std::size_t dot2 = good.find('.', dot1 + 1);

  // A different payload under the original signature.
  const std::string forged = good.substr(0, dot1 + 1) + base64url(R"({"sub":"user-1","role":"admin"})") +
                             good.substr(dot2);
  CHECK(v.verify(forged, now_tp).error == jwt_error::bad_signature);
  CHECK(v.verify(flip(good, dot1 + 2), now_tp).error == jwt_error::bad_signature);
  // A changed header (still HS256) breaks the signature too.
  const std::string reheader = base64url(R"({"alg":"HS256"})") + good.substr(dot1);
  CHECK(v.verify(reheader, now_tp).error == jwt_error::bad_signature);

  CHECK(v.verify(flip(good, dot2 + 1), now_tp).error == jwt_error::bad_signature);
  CHECK(v.verify(flip(good, dot2 + 20), now_tp).error == jwt_error::bad_signature);
  CHECK(v.verify(good.substr(0, good.size() - 4), now_tp).error == jwt_error::bad_signature);  // short
  CHECK(v.verify(good.substr(0, dot2 + 1), now_tp).error == jwt_error::bad_signature);  // no signature

  const std::string other_key = make_token(R"({"alg":"HS256"})", "{}", EVP_sha256(), "another-secret-of-32-bytes-long!");
  const auto r = v.verify(other_key, now_tp);
  CHECK(r.error == jwt_error::bad_signature);
  CHECK(r.reason == "signature mismatch");

  // The same token verifies under a verifier holding that other key.
  CHECK(make_verifier(jwt_options{"another-secret-of-32-bytes-long!", 30s, {}, {}}).verify(other_key, now_tp).ok());
}

TEST_CASE("jwt verifier refuses alg none in any spelling and non-HMAC algorithms", "[unit][middleware][jwt]") {
  const auto v = make_verifier();
  for (const char* alg : {"none", "None", "NONE", "nOnE"}) {
    const std::string header = std::string(R"({"alg":")") + alg + R"("})";
    const std::string unsigned_token = base64url(header) + "." + base64url(exp_claim(3600)) + ".";
    const auto r = v.verify(unsigned_token, now_tp);
    INFO(alg);
    CHECK(r.error == jwt_error::alg_not_allowed);
    CHECK(r.reason == "alg none not allowed");
    // Even with a valid HMAC signature attached.
    CHECK(v.verify(make_token(header, exp_claim(3600)), now_tp).error == jwt_error::alg_not_allowed);
  }
  // Algorithm confusion: an "RS256" token "signed" with the HMAC secret used
  // as if it were the RSA public key.
  for (const char* alg : {"RS256", "RS512", "ES256", "PS256", "EdDSA", "hs256", "HS256 ", "HS1", "dir", ""}) {
    const std::string header = std::string(R"({"alg":")") + alg + R"("})";
    INFO(alg);
    CHECK(v.verify(make_token(header, exp_claim(3600)), now_tp).error == jwt_error::alg_not_allowed);
  }
  CHECK(v.verify(make_token(R"({"typ":"JWT"})", "{}"), now_tp).error == jwt_error::alg_not_allowed);
  CHECK(v.verify(make_token(R"({"alg":256})", "{}"), now_tp).error == jwt_error::alg_not_allowed);
  CHECK(v.verify(make_token(R"({"alg":null})", "{}"), now_tp).error == jwt_error::alg_not_allowed);
  CHECK(v.verify(make_token(R"({"alg":["HS256"]})", "{}"), now_tp).error == jwt_error::alg_not_allowed);
  // Duplicate "alg" (one harmless, one not) is malformed, not "first wins".
  CHECK(v.verify(make_token(R"({"alg":"HS256","alg":"none"})", "{}"), now_tp).error == jwt_error::malformed);
  // A critical extension we do not understand.
  CHECK(v.verify(make_token(R"({"alg":"HS256","crit":["b64"],"b64":false})", "{}"), now_tp).error ==
        jwt_error::malformed);
}

TEST_CASE("jwt verifier refuses tokens with missing parts or extra dots", "[unit][middleware][jwt]") {
  const auto v = make_verifier();
  const std::string good = hs256(exp_claim(3600));
  REQUIRE(v.verify(good, now_tp).ok());
  const std::size_t dot1 = good.find('.');
  const std::size_t dot2 = good.find('.', dot1 + 1);
  for (const std::string& t : {std::string(""), std::string("abc"), good.substr(0, dot1),
                               good.substr(0, dot2), good + ".", good + "." + good.substr(dot2 + 1),
                               "." + good, std::string(".."), std::string("...."), good + "..x.y"}) {
    INFO(t);
    CHECK(v.verify(t, now_tp).error == jwt_error::malformed);
  }
  // An empty payload part is not signed by the original signature ...
  CHECK(v.verify(good.substr(0, dot1) + ".." + good.substr(dot2 + 1), now_tp).error == jwt_error::bad_signature);
  // ... and when it is correctly signed, it is still not a JSON object.
  CHECK(v.verify(hs256(""), now_tp).error == jwt_error::malformed);
}

TEST_CASE("jwt verifier requires strict base64url", "[unit][middleware][jwt]") {
  const auto v = make_verifier();
  const std::string header = base64url(R"({"alg":"HS256"})");
  const std::string payload = base64url(R"({"sub":"u"})");  // 11 bytes: needs padding in base64
  const auto sign = [](const std::string& h, const std::string& p) {
    const std::string input = h + "." + p;
    return input + "." + base64url(hmac(EVP_sha256(), secret, input));
  };
  REQUIRE(v.verify(sign(header, payload), now_tp).ok());

  // Padding, standard-alphabet characters, whitespace, invalid lengths. Each
  // is correctly signed (the signature covers the text as sent), so only the
  // decoding can refuse it.
  std::string padded = payload;
  while (padded.size() % 4 != 0) padded += '=';
  REQUIRE(padded != payload);
  CHECK(v.verify(sign(header, padded), now_tp).error == jwt_error::malformed);
  CHECK(v.verify(sign(header, payload + "+"), now_tp).error == jwt_error::malformed);
  CHECK(v.verify(sign(header, "/" + payload), now_tp).error == jwt_error::malformed);
  CHECK(v.verify(sign(header, payload.substr(0, 8) + " " + payload.substr(8)), now_tp).error == jwt_error::malformed);
  CHECK(v.verify(sign(header + "A", payload), now_tp).error == jwt_error::malformed);

  // Non-zero unused bits in the last character: 17 bytes encode to 23
  // characters, the last of which carries 2 unused (must be zero) bits.
  const std::string h2 = base64url(R"({"alg":"HS256"  })");
  REQUIRE(h2.size() % 4 == 3);
  REQUIRE(v.verify(sign(h2, payload), now_tp).ok());
  std::string h2_bad = h2;
  h2_bad.back() = static_cast<char>(h2_bad.back() + 1);  // sets an unused bit
  CHECK(v.verify(sign(h2_bad, payload), now_tp).error == jwt_error::malformed);
  // 16 bytes encode to 22 characters, the last with 4 unused bits.
  const std::string h3 = base64url(R"({"alg":"HS256" })");
  REQUIRE(h3.size() % 4 == 2);
  REQUIRE(v.verify(sign(h3, payload), now_tp).ok());
  std::string h3_bad = h3;
  h3_bad.back() = static_cast<char>(h3_bad.back() + 1);
  CHECK(v.verify(sign(h3_bad, payload), now_tp).error == jwt_error::malformed);
  // Every tail length decodes: payloads of 1, 2 and 3 bytes past a multiple of 3.
  for (const char* p : {R"({"a":1})", R"({"a":12})", R"({"a":123})", R"({"a":1234})"}) {
    INFO(p);
    CHECK(v.verify(hs256(p), now_tp).ok());
  }

  // A signature with a padding character.
  CHECK(v.verify(sign(header, payload) + "=", now_tp).error == jwt_error::malformed);
  // A valid base64 character in a signature, but the wrong length after decoding.
  CHECK(v.verify(sign(header, payload) + "AAAA", now_tp).error == jwt_error::bad_signature);
}

TEST_CASE("jwt verifier refuses payloads that are not strict JSON objects or carry wrongly typed claims", "[unit][middleware][jwt]") {
  const auto v = make_verifier();
  for (const char* payload :
       {"", "[]", "\"x\"", "null", "{", "{\"exp\":1,}", "{\"exp\" 1}", "{'exp':1}", "{\"a\":01}", "{\"a\":1.}",
        "{\"a\":.5}", "{\"a\":+1}", "{\"a\":tru}", "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xff\"}", "{} {}",
        "{\"exp\":\"1700003600\"}", "{\"exp\":null}", "{\"exp\":1e999}", "{\"nbf\":[1]}", "{\"iss\":1}",
        "{\"aud\":1}", "{\"aud\":[\"a\",1]}", "{\"aud\":{}}", "{\"exp\":1,\"exp\":2}", "{\"a\":NaN}"}) {
    INFO(payload);
    CHECK(v.verify(hs256(payload), now_tp).error == jwt_error::malformed);
  }
  // Nesting is capped.
  CHECK(v.verify(hs256("{\"a\":" + std::string(20, '[') + std::string(20, ']') + "}"), now_tp).ok());
  CHECK(v.verify(hs256("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}"), now_tp).error ==
        jwt_error::malformed);
  // The header must be JSON too.
  CHECK(v.verify(make_token("not json", "{}"), now_tp).error == jwt_error::malformed);
  CHECK(v.verify(make_token(R"({"alg":"HS256"} x)", "{}"), now_tp).error == jwt_error::malformed);
}

TEST_CASE("jwt verifier enforces a configured issuer", "[unit][middleware][jwt]") {
  const auto v = make_verifier(jwt_options{secret, 30s, std::string("https://issuer.example"), {}});
  CHECK(v.verify(hs256(R"({"iss":"https://issuer.example"})"), now_tp).ok());
  CHECK(v.verify(hs256(R"({"iss":"https://issuer.example.evil"})"), now_tp).error == jwt_error::wrong_issuer);
  CHECK(v.verify(hs256(R"({"iss":"HTTPS://ISSUER.EXAMPLE"})"), now_tp).error == jwt_error::wrong_issuer);
  CHECK(v.verify(hs256(R"({"sub":"x"})"), now_tp).error == jwt_error::wrong_issuer);
  CHECK(v.verify(hs256(R"({"iss":["https://issuer.example"]})"), now_tp).error == jwt_error::malformed);
  // Without a configured issuer, any "iss" string is fine.
  CHECK(make_verifier().verify(hs256(R"({"iss":"whoever"})"), now_tp).ok());
}

TEST_CASE("jwt verifier enforces a configured audience as a string or in an array", "[unit][middleware][jwt]") {
  const auto v = make_verifier(jwt_options{secret, 30s, {}, std::string("gateway")});
  CHECK(v.verify(hs256(R"({"aud":"gateway"})"), now_tp).ok());
  CHECK(v.verify(hs256(R"({"aud":["billing","gateway"]})"), now_tp).ok());
  CHECK(v.verify(hs256(R"({"aud":["gateway"]})"), now_tp).ok());
  CHECK(v.verify(hs256(R"({"aud":"billing"})"), now_tp).error == jwt_error::wrong_audience);
  CHECK(v.verify(hs256(R"({"aud":["billing","gateway2"]})"), now_tp).error == jwt_error::wrong_audience);
  CHECK(v.verify(hs256(R"({"aud":[]})"), now_tp).error == jwt_error::wrong_audience);
  CHECK(v.verify(hs256(R"({"aud":"Gateway"})"), now_tp).error == jwt_error::wrong_audience);
  CHECK(v.verify(hs256(R"({"sub":"x"})"), now_tp).error == jwt_error::wrong_audience);
  CHECK(v.verify(hs256(R"({"aud":["gateway",{"x":1}]})"), now_tp).error == jwt_error::malformed);

  // Issuer and audience together; expiry is checked before either.
  const auto both = make_verifier(jwt_options{secret, 30s, std::string("idp"), std::string("gateway")});
  CHECK(both.verify(hs256(R"({"iss":"idp","aud":["gateway"]})"), now_tp).ok());
  CHECK(both.verify(hs256(R"({"iss":"idp","aud":"x"})"), now_tp).error == jwt_error::wrong_audience);
  CHECK(both.verify(hs256(R"({"iss":"x","aud":"gateway"})"), now_tp).error == jwt_error::wrong_issuer);
  CHECK(both.verify(hs256(R"({"iss":"x","aud":"x","exp":1})"), now_tp).error == jwt_error::expired);

  // Without a configured audience, "aud" is only type-checked.
  CHECK(make_verifier().verify(hs256(R"({"aud":["anyone"]})"), now_tp).ok());
}

TEST_CASE("jwt verifier with an empty secret refuses every token", "[unit][middleware][jwt]") {
  const jwt_verifier v(jwt_options{});
  const std::string signed_with_empty_key = make_token(R"({"alg":"HS256"})", "{}", EVP_sha256(), "");
  const auto r = v.verify(signed_with_empty_key, now_tp);
  CHECK(r.error == jwt_error::bad_signature);
  CHECK(r.reason == "no JWT secret configured");
  CHECK(v.verify(hs256("{}"), now_tp).error == jwt_error::bad_signature);
}

TEST_CASE("jwt verifier caps the token length", "[unit][middleware][jwt]") {
  const auto v = make_verifier();
  const std::string base = hs256(R"({"pad":""})");
  // Grow the padding claim until the token is exactly at the cap.
  std::size_t pad = (jwt_verifier::max_token_size - base.size()) * 3 / 4 - 8;
  std::string at_cap;
  for (;; ++pad) {
    std::string t = hs256(R"({"pad":")" + std::string(pad, 'x') + "\"}");
    if (t.size() > jwt_verifier::max_token_size) break;
    at_cap = std::move(t);
  }
  REQUIRE(at_cap.size() > jwt_verifier::max_token_size - 4);
  CHECK(v.verify(at_cap, now_tp).ok());
  const auto r = v.verify(hs256(R"({"pad":")" + std::string(pad, 'x') + "\"}"), now_tp);
  CHECK(r.error == jwt_error::malformed);
  CHECK(r.reason == "token too long");
}

TEST_CASE("jwt verifier is usable after a move and names its errors", "[unit][middleware][jwt]") {
  auto a = make_verifier();
  jwt_verifier b(std::move(a));
  CHECK(b.verify(hs256("{}"), now_tp).ok());
  CHECK(b.options().secret == secret);
  CHECK(gateway::middleware::to_string(jwt_error::none) == "ok");
  CHECK(gateway::middleware::to_string(jwt_error::alg_not_allowed) == "alg_not_allowed");
  CHECK(gateway::middleware::to_string(jwt_error::wrong_audience) == "wrong_audience");
}

TEST_CASE("jwt verifier gives the same answers from several threads at once", "[unit][middleware][jwt]") {
  const auto v = make_verifier(jwt_options{secret, 30s, {}, std::string("gateway")});
  const std::vector<std::pair<std::string, jwt_error>> cases = {
      {make_token(R"({"alg":"HS256"})", R"({"aud":"gateway"})", EVP_sha256()), jwt_error::none},
      {make_token(R"({"alg":"HS384"})", R"({"aud":"gateway"})", EVP_sha384()), jwt_error::none},
      {make_token(R"({"alg":"HS512"})", R"({"aud":"gateway"})", EVP_sha512()), jwt_error::none},
      {make_token(R"({"alg":"HS256"})", R"({"aud":"x"})", EVP_sha256()), jwt_error::wrong_audience},
      {make_token(R"({"alg":"HS256"})", R"({"aud":"gateway"})", EVP_sha256(), "wrong"), jwt_error::bad_signature},
      {make_token(R"({"alg":"HS256"})", R"({"aud":"gateway","exp":5})", EVP_sha256()), jwt_error::expired},
  };
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const auto& c = cases[static_cast<std::size_t>(i + t) % cases.size()];
        if (v.verify(c.first, now_tp).error != c.second) wrong.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong.load() == 0);
}
