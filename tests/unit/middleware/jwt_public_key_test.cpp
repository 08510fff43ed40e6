// JWTs signed with public-key algorithms (RS*, ES*, EdDSA) and keys from a
// JWK Set; the HMAC cases are in jwt_test.cpp.
#include "gateway/middleware/jwt.hpp"

#include <catch2/catch.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gateway/core/base64url.hpp"
#include "tests/support/jwt_keys.hpp"
#include "tests/support/report.hpp"

using gateway::core::base64url_encode;
using gateway::middleware::jwk_set;
using gateway::middleware::jwt_claim_sink;
using gateway::middleware::jwt_error;
using gateway::middleware::jwt_options;
using gateway::middleware::jwt_verifier;
using gateway::test::compact_token;
using gateway::test::jwk_set_json;
using gateway::test::signing_key;

namespace {

using namespace std::chrono_literals;
constexpr std::int64_t now_epoch = 1'700'000'000;
const std::chrono::system_clock::time_point now_tp{std::chrono::seconds{now_epoch}};
const std::string secret = "a-secret-key-of-thirty-two-bytes";

struct keys {
  signing_key rsa = signing_key::generate("RSA");
  signing_key p256 = signing_key::generate("P-256");
  signing_key p384 = signing_key::generate("P-384");
  signing_key ed = signing_key::generate("Ed25519");
  // Same types, other keys: what an attacker or a rotated-out key signs with.
  signing_key rsa2 = signing_key::generate("RSA");
  signing_key p256_2 = signing_key::generate("P-256");
  signing_key ed2 = signing_key::generate("Ed25519");
};

const keys& k() {
  static const keys all;
  return all;
}

// One key of each type, each with a kid.
std::shared_ptr<const jwk_set> standard_set() {
  static const auto set = std::make_shared<const jwk_set>(jwk_set::parse(jwk_set_json(
      {k().rsa.jwk("rsa"), k().p256.jwk("ec256"), k().p384.jwk("ec384", "ES384"), k().ed.jwk("ed", "EdDSA")})));
  return set;
}

jwt_verifier verifier(std::shared_ptr<const jwk_set> set = standard_set(), jwt_options o = {}) {
  o.jwks = std::move(set);
  return jwt_verifier(std::move(o));
}

std::string exp_claim(std::int64_t offset) {
  return R"({"sub":"user-1","exp":)" + std::to_string(now_epoch + offset) + "}";
}

struct signed_case {
  const char* alg;
  const signing_key* key;
  const char* kid;
};

std::vector<signed_case> every_alg() {
  return {{"RS256", &k().rsa, "rsa"}, {"RS384", &k().rsa, "rsa"},     {"RS512", &k().rsa, "rsa"},
          {"ES256", &k().p256, "ec256"}, {"ES384", &k().p384, "ec384"}, {"EdDSA", &k().ed, "ed"}};
}

std::string hmac256(std::string_view key, std::string_view data) {
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), buf, &len);
  return std::string(reinterpret_cast<const char*>(buf), len);
}

struct recorded_claims final : jwt_claim_sink {
  std::vector<std::pair<std::size_t, std::string>> got;
  void claim(std::size_t index, std::string_view value) override { got.emplace_back(index, std::string(value)); }
};

}  // namespace

TEST_CASE("jwt verifier accepts RS256, RS384, RS512, ES256, ES384 and EdDSA tokens from JWK Set keys",
          "[unit][middleware][jwt]") {
  const auto v = verifier();
  for (const auto& c : every_alg()) {
    INFO(c.alg);
    const auto r = v.verify(c.key->token(c.alg, c.kid, exp_claim(3600)), now_tp);
    CHECK(r.reason == "ok");
    CHECK(r.ok());
  }
}

TEST_CASE("jwt verifier refuses a public-key token signed by another key, or tampered with", "[unit][middleware][jwt]") {
  const auto v = verifier();
  const std::vector<std::pair<signed_case, const signing_key*>> others = {
      {{"RS256", &k().rsa, "rsa"}, &k().rsa2}, {{"RS512", &k().rsa, "rsa"}, &k().rsa2},
      {{"ES256", &k().p256, "ec256"}, &k().p256_2}, {{"EdDSA", &k().ed, "ed"}, &k().ed2}};
  for (const auto& [c, other] : others) {
    INFO(c.alg);
    const auto wrong = v.verify(other->token(c.alg, c.kid, exp_claim(3600)), now_tp);
    CHECK(wrong.error == jwt_error::bad_signature);
    CHECK(wrong.reason == "signature mismatch");
  }
  for (const auto& c : every_alg()) {
    INFO(c.alg);
    const std::string good = c.key->token(c.alg, c.kid, R"({"sub":"user-1","role":"reader"})");
    REQUIRE(v.verify(good, now_tp).ok());
    const std::size_t dot1 = good.find('.');
    const std::size_t dot2 = good.find('.', dot1 + 1);
    const std::string forged = good.substr(0, dot1 + 1) + base64url_encode(R"({"sub":"user-1","role":"admin"})") +
                               good.substr(dot2);
    CHECK(v.verify(forged, now_tp).error == jwt_error::bad_signature);
    std::string flipped = good;
    flipped[dot2 + 5] = flipped[dot2 + 5] == 'A' ? 'B' : 'A';
    CHECK(v.verify(flipped, now_tp).error == jwt_error::bad_signature);
    // Four characters short: three bytes fewer, or (as the last character's
    // unused bits need not be zero then) not canonical base64url.
    const auto shorter = v.verify(good.substr(0, good.size() - 4), now_tp).error;
    CHECK((shorter == jwt_error::bad_signature || shorter == jwt_error::malformed));
    CHECK(v.verify(good.substr(0, dot2 + 1), now_tp).error == jwt_error::bad_signature);
    // A header re-signed by nobody: the signature covers it.
    const std::string reheader =
        base64url_encode(std::string(R"({"kid":")") + c.kid + R"(","alg":")" + c.alg + "\"}") + good.substr(dot1);
    CHECK(v.verify(reheader, now_tp).error == jwt_error::bad_signature);
  }
}

TEST_CASE("jwt verifier checks ES256 signatures as R || S of exactly 64 bytes", "[unit][middleware][jwt]") {
  const auto v = verifier();
  const std::string header = R"({"alg":"ES256","kid":"ec256"})";
  const std::string payload = exp_claim(3600);
  const std::string input = base64url_encode(header) + "." + base64url_encode(payload);
  const std::string raw = k().p256.sign("ES256", input);
  REQUIRE(raw.size() == 64);
  CHECK(v.verify(input + "." + base64url_encode(raw), now_tp).ok());
  // R and S swapped, a zero R, a zero S, one byte short or long, all zeros.
  CHECK(v.verify(input + "." + base64url_encode(raw.substr(32) + raw.substr(0, 32)), now_tp).error ==
        jwt_error::bad_signature);
  CHECK(v.verify(input + "." + base64url_encode(std::string(32, '\0') + raw.substr(32)), now_tp).error ==
        jwt_error::bad_signature);
  CHECK(v.verify(input + "." + base64url_encode(raw.substr(0, 32) + std::string(32, '\0')), now_tp).error ==
        jwt_error::bad_signature);
  CHECK(v.verify(input + "." + base64url_encode(raw.substr(0, 63)), now_tp).error == jwt_error::bad_signature);
  CHECK(v.verify(input + "." + base64url_encode(raw + "x"), now_tp).error == jwt_error::bad_signature);
  CHECK(v.verify(input + "." + base64url_encode(std::string(64, '\0')), now_tp).error == jwt_error::bad_signature);
  CHECK(v.verify(input + "." + base64url_encode(std::string(64, '\xff')), now_tp).error == jwt_error::bad_signature);
  // A DER-sized signature (what libcrypto produces) is not what JWS carries.
  CHECK(v.verify(input + "." + base64url_encode(std::string(70, 'x')), now_tp).error == jwt_error::bad_signature);
  // ES384 takes 96 bytes and a 64-byte signature is refused for it.
  const std::string in384 = base64url_encode(R"({"alg":"ES384","kid":"ec384"})") + "." + base64url_encode(payload);
  const std::string raw384 = k().p384.sign("ES384", in384);
  REQUIRE(raw384.size() == 96);
  CHECK(v.verify(in384 + "." + base64url_encode(raw384), now_tp).ok());
  CHECK(v.verify(in384 + "." + base64url_encode(raw384.substr(0, 64)), now_tp).error == jwt_error::bad_signature);
}

TEST_CASE("jwt verifier picks the key by kid, without kid only when exactly one key fits", "[unit][middleware][jwt]") {
  const auto v = verifier();
  // A kid the set does not have.
  const auto unknown = v.verify(k().rsa.token("RS256", "rsa-old", exp_claim(3600)), now_tp);
  CHECK(unknown.error == jwt_error::unknown_key);
  CHECK(unknown.reason == "kid names no configured key");
  // No kid: one key of each type in the set, so each alg has exactly one.
  for (const auto& c : every_alg()) {
    INFO(c.alg);
    CHECK(v.verify(c.key->token(c.alg, "", exp_claim(3600)), now_tp).ok());
  }
  // Two RSA keys: a kid is needed.
  const auto two = verifier(std::make_shared<const jwk_set>(
      jwk_set::parse(jwk_set_json({k().rsa.jwk("a"), k().rsa2.jwk("b"), k().p256.jwk("")}))));
  CHECK(two.verify(k().rsa.token("RS256", "a", "{}"), now_tp).ok());
  CHECK(two.verify(k().rsa2.token("RS256", "b", "{}"), now_tp).ok());
  CHECK(two.verify(k().rsa2.token("RS256", "a", "{}"), now_tp).error == jwt_error::bad_signature);
  const auto ambiguous = two.verify(k().rsa.token("RS256", "", "{}"), now_tp);
  CHECK(ambiguous.error == jwt_error::unknown_key);
  CHECK(ambiguous.reason == "token has no kid and several configured keys fit alg");
  CHECK(two.verify(k().p256.token("ES256", "", "{}"), now_tp).ok());  // the key without kid
  const auto none = two.verify(k().ed.token("EdDSA", "", "{}"), now_tp);
  CHECK(none.error == jwt_error::unknown_key);
  CHECK(none.reason == "no configured key fits alg");
  // A kid that is not a string.
  const std::string input = base64url_encode(R"({"alg":"RS256","kid":1})") + "." + base64url_encode("{}");
  CHECK(two.verify(input + "." + base64url_encode(k().rsa.sign("RS256", input)), now_tp).error == jwt_error::malformed);
}

TEST_CASE("jwt verifier: a token whose kid is empty names no key, even in a set with keys without a kid",
          "[unit][middleware][jwt]") {
  // Two RSA keys without a kid: a token without a kid is ambiguous, and an
  // empty kid must not stand for "a key without one".
  const auto v = verifier(std::make_shared<const jwk_set>(
      jwk_set::parse(jwk_set_json({k().rsa.jwk(""), k().rsa2.jwk(""), k().p256.jwk("e")}))));
  const auto with_empty_kid = [](const signing_key& key) {
    const std::string input = base64url_encode(R"({"alg":"RS256","kid":""})") + "." + base64url_encode("{}");
    return input + "." + base64url_encode(key.sign("RS256", input));
  };
  for (const signing_key* key : {&k().rsa, &k().rsa2}) {
    const auto r = v.verify(with_empty_kid(*key), now_tp);
    CHECK(r.error == jwt_error::unknown_key);
    CHECK(r.reason == "kid names no configured key");
  }
  CHECK(v.verify(k().rsa.token("RS256", "", "{}"), now_tp).reason ==
        "token has no kid and several configured keys fit alg");
  CHECK(v.verify(k().p256.token("ES256", "e", "{}"), now_tp).ok());
}

TEST_CASE("jwt verifier never lets a token choose an algorithm its key was not made for", "[unit][middleware][jwt]") {
  const auto v = verifier();
  // The kid of an RSA key with an ES256 signature, and the other way round.
  const auto es_as_rsa = v.verify(k().p256.token("ES256", "rsa", "{}"), now_tp);
  CHECK(es_as_rsa.error == jwt_error::alg_not_allowed);
  CHECK(es_as_rsa.reason == "the kid's key does not fit alg");
  CHECK(v.verify(k().rsa.token("RS256", "ec256", "{}"), now_tp).error == jwt_error::alg_not_allowed);
  CHECK(v.verify(k().ed.token("EdDSA", "rsa", "{}"), now_tp).error == jwt_error::alg_not_allowed);
  // A key with "alg": "ES384" verifies ES384 only; an "RS256" key no RS512.
  const auto pinned = verifier(std::make_shared<const jwk_set>(jwk_set::parse(jwk_set_json({k().rsa.jwk("r", "RS256")}))));
  CHECK(pinned.verify(k().rsa.token("RS256", "r", "{}"), now_tp).ok());
  CHECK(pinned.verify(k().rsa.token("RS512", "r", "{}"), now_tp).error == jwt_error::alg_not_allowed);
  CHECK(pinned.verify(k().rsa.token("RS512", "", "{}"), now_tp).error == jwt_error::unknown_key);

  // The classic confusion: HS256 "signed" with the RSA public key (as DER, or
  // as the JWK text) as the HMAC secret, naming the RSA key's kid.
  for (const std::string& stolen : {k().rsa.public_der(), k().rsa.jwk("rsa")}) {
    const std::string header = R"({"alg":"HS256","kid":"rsa"})";
    const std::string input = base64url_encode(header) + "." + base64url_encode(exp_claim(3600));
    const std::string token = input + "." + base64url_encode(hmac256(stolen, input));
    // No --jwt-secret: HS256 has no key at all.
    const auto r = v.verify(token, now_tp);
    CHECK(r.error == jwt_error::bad_signature);
    CHECK(r.reason == "no JWT secret configured");
    // With one: the secret is the only HMAC key, kid or not.
    jwt_options with_secret;
    with_secret.secret = secret;
    CHECK(verifier(standard_set(), with_secret).verify(token, now_tp).error == jwt_error::bad_signature);
  }
  // alg none, with or without a kid, with or without a signature.
  for (const char* header : {R"({"alg":"none","kid":"rsa"})", R"({"alg":"none"})", R"({"alg":"NONE","kid":"ed"})"}) {
    INFO(header);
    CHECK(v.verify(compact_token(header, "{}", ""), now_tp).error == jwt_error::alg_not_allowed);
    CHECK(v.verify(compact_token(header, "{}", "sig"), now_tp).error == jwt_error::alg_not_allowed);
  }
  // PS256 is not verified (the RSA key would fit its type, not its padding).
  CHECK(v.verify(compact_token(R"({"alg":"PS256","kid":"rsa"})", "{}", k().rsa.sign("RS256", "x")), now_tp).error ==
        jwt_error::alg_not_allowed);
  // Without a key set, public-key algorithms are not allowed at all.
  jwt_options only_secret;
  only_secret.secret = secret;
  const jwt_verifier hs_only(only_secret);
  const auto no_set = hs_only.verify(k().rsa.token("RS256", "rsa", "{}"), now_tp);
  CHECK(no_set.error == jwt_error::alg_not_allowed);
  CHECK(no_set.reason == "alg needs keys from --jwt-jwks");
}

TEST_CASE("jwt verifier with a secret and a key set accepts both kinds", "[unit][middleware][jwt]") {
  jwt_options o;
  o.secret = secret;
  const auto v = verifier(standard_set(), o);
  const std::string input = base64url_encode(R"({"alg":"HS256","kid":"anything"})") + "." + base64url_encode("{}");
  CHECK(v.verify(input + "." + base64url_encode(hmac256(secret, input)), now_tp).ok());
  CHECK(v.verify(k().ed.token("EdDSA", "ed", "{}"), now_tp).ok());
}

TEST_CASE("jwt verifier checks exp, nbf, iss and aud of public-key tokens as of HMAC ones", "[unit][middleware][jwt]") {
  jwt_options o;
  o.issuer = "https://idp.example";
  o.audience = "gateway";
  o.leeway = 0s;
  const auto v = verifier(standard_set(), o);
  for (const auto& c : every_alg()) {
    INFO(c.alg);
    const auto tok = [&](const std::string& payload) { return c.key->token(c.alg, c.kid, payload); };
    const std::string exp = std::to_string(now_epoch + 60);
    CHECK(v.verify(tok(R"({"iss":"https://idp.example","aud":"gateway","exp":)" + exp + "}"), now_tp).ok());
    CHECK(v.verify(tok(R"({"iss":"https://idp.example","aud":"gateway","exp":)" + exp + "}"), now_tp + 60s).error ==
          jwt_error::expired);
    CHECK(v.verify(tok(R"({"iss":"https://idp.example","aud":"gateway","nbf":)" + exp + "}"), now_tp).error ==
          jwt_error::not_yet_valid);
    CHECK(v.verify(tok(R"({"iss":"https://other.example","aud":"gateway"})"), now_tp).error ==
          jwt_error::wrong_issuer);
    CHECK(v.verify(tok(R"({"iss":"https://idp.example","aud":["billing"]})"), now_tp).error ==
          jwt_error::wrong_audience);
  }
}

TEST_CASE("jwt verifier hands the configured claims of a valid token to the sink, and nothing else",
          "[unit][middleware][jwt]") {
  jwt_options o;
  o.claim_headers = {{"sub", "X-User-Id"}, {"tenant", "X-Tenant"}, {"admin", "X-Admin"},
                     {"roles", "X-Roles"},  {"bad", "X-Bad"},       {"absent", "X-Absent"}, {"empty", "X-Empty"}};
  const auto v = verifier(standard_set(), o);
  recorded_claims sink;
  const std::string payload =
      R"({"sub":"user-42","tenant":1234.50,"admin":false,"roles":["a"],"bad":"x\r\nEvil: 1","empty":"","exp":)" +
      std::to_string(now_epoch + 60) + "}";
  REQUIRE(v.verify(k().ed.token("EdDSA", "ed", payload), now_tp, &sink).ok());
  const std::vector<std::pair<std::size_t, std::string>> expected = {{0, "user-42"}, {1, "1234.50"}, {2, "false"}};
  CHECK(sink.got == expected);

  // Nothing for a token that fails, even after its signature verified.
  recorded_claims none;
  CHECK(v.verify(k().ed.token("EdDSA", "ed", R"({"sub":"user-42","exp":1})"), now_tp, &none).error ==
        jwt_error::expired);
  CHECK(v.verify(k().ed2.token("EdDSA", "ed", R"({"sub":"user-42"})"), now_tp, &none).error ==
        jwt_error::bad_signature);
  CHECK(none.got.empty());
  // A forwarded claim given twice is malformed (which one would be sent?).
  CHECK(v.verify(k().ed.token("EdDSA", "ed", R"({"sub":"a","sub":"b"})"), now_tp, &none).error ==
        jwt_error::malformed);
  CHECK(none.got.empty());
  // Other claims may repeat as before.
  CHECK(v.verify(k().ed.token("EdDSA", "ed", R"({"x":"a","x":"b"})"), now_tp, &none).ok());
}

TEST_CASE("jwt verifier survives garbage and mutated tokens without accepting any", "[unit][middleware][jwt]") {
  jwt_options o;
  o.secret = secret;
  o.claim_headers = {{"sub", "X-User-Id"}};
  const auto v = verifier(standard_set(), o);
  std::vector<std::string> valid;
  for (const auto& c : every_alg()) valid.push_back(c.key->token(c.alg, c.kid, exp_claim(3600)));
  std::mt19937 rng(20261201);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00\xff";
  std::size_t accepted = 0, runs = 0;
  recorded_claims sink;
  for (int round = 0; round < 3000; ++round) {
    const std::string& base = valid[static_cast<std::size_t>(round) % valid.size()];
    std::string t = base;
    switch (rng() % 6) {
      case 0: t[rng() % t.size()] = alphabet[rng() % alphabet.size()]; break;  // one character
      case 1: t.resize(rng() % t.size()); break;                                // truncated
      case 2: t.insert(rng() % t.size(), 1, '.'); break;                        // an extra dot
      case 3: std::swap(t[rng() % t.size()], t[rng() % t.size()]); break;       // two swapped
      case 4: {                                                                 // random bytes
        t.assign(rng() % 300, '\0');
        for (auto& ch : t) ch = static_cast<char>(rng());
        break;
      }
      case 5: {  // a valid header and signature around a random payload
        std::string junk(rng() % 64, '\0');
        for (auto& ch : junk) ch = alphabet[rng() % alphabet.size()];
        t = t.substr(0, t.find('.') + 1) + junk + t.substr(t.rfind('.'));
        break;
      }
    }
    ++runs;
    const auto r = v.verify(t, now_tp, &sink);
    if (r.ok() && t != base) ++accepted;
  }
  CHECK(runs == 3000);
  CHECK(accepted == 0);
}

TEST_CASE("jwt verifier gives the same public-key answers from several threads at once", "[unit][middleware][jwt]") {
  const auto v = verifier();
  std::vector<std::pair<std::string, jwt_error>> cases;
  for (const auto& c : every_alg()) {
    cases.emplace_back(c.key->token(c.alg, c.kid, exp_claim(3600)), jwt_error::none);
    cases.emplace_back(c.key->token(c.alg, c.kid, exp_claim(-3600)), jwt_error::expired);
  }
  cases.emplace_back(k().rsa2.token("RS256", "rsa", "{}"), jwt_error::bad_signature);
  cases.emplace_back(k().p256_2.token("ES256", "ec256", "{}"), jwt_error::bad_signature);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const auto& c = cases[static_cast<std::size_t>(i + t) % cases.size()];
        if (v.verify(c.first, now_tp).error != c.second) wrong.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong.load() == 0);
}

namespace {
// This thread's CPU time: on a shared, oversubscribed machine wall time
// measures the neighbours; CPU time is what a verification costs a worker.
double thread_cpu_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}
}  // namespace

// Not a gate (timings on a shared machine): figures for docs/perf/results.md.
// build/bin/unit_tests "[.perf][jwt]"
TEST_CASE("jwt verification cost per algorithm", "[.perf][jwt]") {
  jwt_options o;
  o.secret = secret;
  const auto v = verifier(standard_set(), o);
  std::vector<std::pair<std::string, std::string>> tokens;
  const std::string payload = R"({"sub":"user-1","iss":"https://idp.example","aud":"gateway","exp":)" +
                              std::to_string(now_epoch + 3600) + "}";
  {
    const std::string input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url_encode(payload);
    tokens.emplace_back("HS256", input + "." + base64url_encode(hmac256(secret, input)));
  }
  for (const auto& c : every_alg()) tokens.emplace_back(c.alg, c.key->token(c.alg, c.kid, payload));
  for (const auto& [alg, token] : tokens) {
    REQUIRE(v.verify(token, now_tp).ok());
    const int n = alg == "ES384" ? 50 : 400;
    std::vector<double> cpu, wall;
    for (int round = 0; round < 7; ++round) {
      const auto start = std::chrono::steady_clock::now();
      const double cpu_start = thread_cpu_us();
      for (int i = 0; i < n; ++i) REQUIRE(v.verify(token, now_tp).ok());
      cpu.push_back((thread_cpu_us() - cpu_start) / n);
      wall.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / n);
    }
    std::sort(cpu.begin(), cpu.end());
    std::sort(wall.begin(), wall.end());
    GATEWAY_REPORT(alg << ": " << cpu[3] << " us CPU per verification (median of 7 rounds of " << n << "; min "
                       << cpu.front() << ", max " << cpu.back() << "), wall " << wall[3] << " us");
  }
}
