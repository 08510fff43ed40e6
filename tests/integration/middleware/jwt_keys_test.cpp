// JWTs signed with public keys from a --jwt-jwks file, through the real
// gateway binary (a child process): verification, claims forwarded as
// request headers (and forged ones removed), the file re-read on SIGHUP, and
// a bad file refused at start and on reload.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>

#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/jwt_keys.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::string temp_path() {
  char name[] = "/tmp/gateway-jwks-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  ::close(fd);
  return name;
}

// Replaces the file in one step (a new file renamed over it), as key
// rotation tools do.
void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".new";
  std::ofstream(tmp) << text;
  REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0);
}

std::string request(std::string_view path, std::string_view extra_headers) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) + "\r\n";
}

int status_of(std::uint16_t port, std::string_view path, std::string_view extra_headers) {
  auto r = test::http_request(port, request(path, extra_headers));
  return r ? r->status : -1;
}

std::string bearer(const std::string& token) { return "Authorization: Bearer " + token + "\r\n"; }

// The header lines of the last request the backend received.
std::string last_head(const test::recording_backend& b) {
  auto all = b.requests();
  return all.empty() ? std::string() : all.back().head;
}

std::size_t occurrences(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("JWK Set file: public-key tokens verified by the gateway process, claims forwarded as headers, forged "
          "ones removed, the keys re-read on SIGHUP and a bad file refused",
          "[integration][middleware]") {
  const auto rsa = test::signing_key::generate("RSA");
  const auto ed = test::signing_key::generate("Ed25519");
  const auto p256 = test::signing_key::generate("P-256");
  const auto next = test::signing_key::generate("RSA");
  const std::string path = temp_path();
  write_file(path, test::jwk_set_json({rsa.jwk("k1", "RS256"), ed.jwk("k2"), p256.jwk("k3")}));

  test::recording_backend backend;
  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--threads", "2",
                          "--access-log", "off", "--rate-limit", "off", "--backend", backend.url(), "--route",
                          "/open/=" + backend.url(), "--api-key", "integration-key", "--jwt-jwks", path,
                          "--jwt-claim-header", "sub=X-User-Id", "--jwt-claim-header", "tenant=X-Tenant"});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  REQUIRE(listening);
  const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  REQUIRE(port != 0);
  const auto keys_line = gw.wait_for_line("--jwt-jwks", true, 5s);
  REQUIRE(keys_line);
  CHECK(keys_line->find(R"(3 keys (kid "k1" RS256, kid "k2" OKP Ed25519, kid "k3" EC P-256))") != std::string::npos);

  const std::string claims = R"({"sub":"alice","tenant":42,"exp":)" +
                             std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count() +
                                            600) +
                             "}";
  const std::string rs256 = rsa.token("RS256", "k1", claims);
  const std::string eddsa = ed.token("EdDSA", "k2", claims);
  const std::string es256 = p256.token("ES256", "", claims);  // no kid: the one P-256 key
  const std::string from_next = next.token("RS256", "k4", claims);

  // A valid token: the backend sees the claims, not what the client claimed.
  // The forged fields include '_' spellings, which CGI-style backends read
  // as the same variable (HTTP_X_USER_ID).
  const std::string forged = "X-User-Id: mallory\r\nx-user-id: mallory2\r\nX_User_Id: mallory3\r\n"
                             "x_user-ID: mallory4\r\nX-Tenant_: keep-me\r\nX_Tenant: mallory5\r\n";
  CHECK(status_of(port, "/api/who", bearer(rs256) + forged) == 200);
  std::string head = last_head(backend);
  INFO(head);
  CHECK(occurrences(head, "X-User-Id: alice\r\n") == 1);
  CHECK(occurrences(head, "X-Tenant: 42\r\n") == 1);
  CHECK(head.find("mallory") == std::string::npos);
  CHECK(occurrences(head, "X-Tenant_: keep-me\r\n") == 1);  // another name: not a claim header's
  CHECK(status_of(port, "/api/who", bearer(eddsa)) == 200);
  CHECK(occurrences(last_head(backend), "X-User-Id: alice\r\n") == 1);
  CHECK(status_of(port, "/api/who", bearer(es256)) == 200);

  // Refused: another key, an alg that does not fit the kid's key, garbage.
  const std::size_t before = backend.request_count();
  CHECK(status_of(port, "/api/who", bearer(from_next)) == 401);
  CHECK(status_of(port, "/api/who", bearer(rsa.token("RS512", "k1", claims))) == 401);  // k1 is RS256 only
  CHECK(status_of(port, "/api/who", bearer(p256.token("ES256", "k1", claims))) == 401);
  CHECK(status_of(port, "/api/who", bearer("e30.e30.")) == 401);
  CHECK(status_of(port, "/api/who", bearer(rs256.substr(0, rs256.size() - 2))) == 401);
  CHECK(backend.request_count() == before);

  // Other ways in carry no claim headers at all: an API key, a route
  // without auth.
  CHECK(status_of(port, "/api/key", "X-API-Key: integration-key\r\nX-Tenant: 1\r\n" + forged) == 200);
  head = last_head(backend);
  CHECK(head.find("mallory") == std::string::npos);
  CHECK(head.find("X-Tenant:") == std::string::npos);
  CHECK(occurrences(head, "X-Tenant_: keep-me\r\n") == 1);
  CHECK(status_of(port, "/open/x", forged) == 200);
  head = last_head(backend);
  CHECK(head.find("mallory") == std::string::npos);
  CHECK(occurrences(head, "X-Tenant_: keep-me\r\n") == 1);
  CHECK(head.find("GET /x ") == 0);

  // Key rotation: the file now holds only the next key.
  write_file(path, test::jwk_set_json({next.jwk("k4")}));
  std::size_t from = gw.err().size();
  REQUIRE(::kill(gw.pid(), SIGHUP) == 0);
  auto said = gw.wait_for_line("--jwt-jwks: 1 key", true, 10s, from);
  REQUIRE(said);
  CHECK(gw.err().find("configuration reloaded", from) != std::string::npos);
  CHECK(status_of(port, "/api/who", bearer(from_next)) == 200);
  CHECK(occurrences(last_head(backend), "X-User-Id: alice\r\n") == 1);
  CHECK(status_of(port, "/api/who", bearer(rs256)) == 401);
  CHECK(status_of(port, "/api/who", bearer(eddsa)) == 401);

  // A broken file, then none at all: refused in one line each, keys kept.
  for (const bool remove : {false, true}) {
    if (remove) REQUIRE(std::remove(path.c_str()) == 0);
    else write_file(path, R"({"keys": [{"kty": "RSA", "kid": "k5", "n": "AQAB"}]})");
    from = gw.err().size();
    REQUIRE(::kill(gw.pid(), SIGHUP) == 0);
    said = gw.wait_for_line("SIGHUP", true, 10s, from);
    REQUIRE(said);
    INFO(*said);
    CHECK(said->find("reload REFUSED") != std::string::npos);
    CHECK(said->find("--jwt-jwks: " + path + ": ") != std::string::npos);
    CHECK(said->find(remove ? "cannot open" : "e is missing") != std::string::npos);
    CHECK(status_of(port, "/api/who", bearer(from_next)) == 200);
    CHECK(status_of(port, "/api/who", bearer(rs256)) == 401);
  }

  gw.signal(SIGTERM);
  const auto status = gw.wait_exit(15s);
  REQUIRE(status);
  CHECK(*status == 0);
}

TEST_CASE("JWK Set file and claim headers: a bad --jwt-jwks or --jwt-claim-header stops the gateway at start "
          "with exit 2 naming the flag",
          "[integration][middleware]") {
  const std::string bad = temp_path();
  write_file(bad, R"({"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "short"}]})");
  const std::string good = temp_path();
  write_file(good, test::jwk_set_json({test::signing_key::generate("Ed25519").jwk("k")}));
  struct start_case {
    std::vector<std::string> flags;
    std::string says;
  };
  const std::vector<start_case> cases = {
      {{"--jwt-jwks", bad + ".missing"}, "--jwt-jwks: " + bad + ".missing: cannot open the JWK Set file"},
      {{"--jwt-jwks", bad}, "--jwt-jwks: " + bad + ": keys[0] (kid \"short\"): x and y must be 32 bytes"},
      {{"--jwt-jwks", good, "--jwt-claim-header", "sub=Host"}, "--jwt-claim-header sub=Host: header 'Host'"},
      {{"--jwt-jwks", good, "--jwt-claim-header", "sub=Bad Name"}, "not a valid header name"},
      {{"--jwt-claim-header", "sub=X-User"}, "--jwt-claim-header needs --jwt-secret or --jwt-jwks"},
      {{"--jwt-jwks", good, "--jwt-claim-header", "sub"}, "--jwt-claim-header: invalid value 'sub'"},
      {{"--jwt-jwks", good, "--jwt-claim-header", "a=X-A", "--jwt-claim-header", "b=x-a"},
       "header x-a already carries claim a"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0",
                                     "--access-log", "off"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    test::child_process gw(argv);
    const auto status = gw.wait_exit(15s);
    INFO(c.says << "\nstderr: " << gw.err());
    REQUIRE(status);
    CHECK(*status == 2);
    CHECK(gw.err().find(c.says) != std::string::npos);
  }
  std::remove(bad.c_str());
  std::remove(good.c_str());
}
