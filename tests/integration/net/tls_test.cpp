// The gateway terminating HTTPS (net/tls_context.hpp, net/tls_stream.hpp):
// the gateway runs in-process (so the ASan build checks its TLS code), the
// clients are OpenSSL (tests/support/tls_client.hpp), curl and openssl
// s_client as child processes, and raw bytes. Certificates are made at test
// time with the openssl CLI.
#include <catch2/catch.hpp>

#include <openssl/ssl.h>

#include <fstream>
#include <string>
#include <vector>

#include "gateway/net/tls_context.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/tls_client.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view health = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";

struct certs {
  test::temp_dir dir;
  std::string cert = dir.file("a.pem");
  std::string key = dir.file("a.key");
  explicit certs(const std::vector<std::string>& names = {"localhost"}) { test::make_certificate(names, cert, key); }
};

core::config tls_config(const certs& c) {
  auto cfg = test::test_config();
  cfg.tls_certs = {c.cert};
  cfg.tls_keys = {c.key};
  return cfg;
}

test::tls_client_options trusting(const std::string& ca) {
  test::tls_client_options o;
  o.ca_file = ca;
  o.server_name = "localhost";
  return o;
}

}  // namespace

TEST_CASE("HTTPS: TLS 1.3 and 1.2 clients get answers with ALPN http/1.1, several requests on one handshake",
          "[integration][tls]") {
  certs c;
  test::running_server srv(tls_config(c));
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    auto o = trusting(c.cert);
    o.min_version = o.max_version = version;
    test::tls_client client(srv.port(), o);
    REQUIRE(client.connected());
    CHECK(client.protocol() == (version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2"));
    CHECK(client.alpn() == "http/1.1");
    for (int i = 0; i < 3; ++i) {
      REQUIRE(client.send(health));
      auto r = client.read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->body.find("\"healthy\"") != std::string::npos);
    }
  }
  // A plain HTTP request on the TLS port is not answered as HTTP.
  auto plain = test::http_request(srv.port(), health);
  CHECK_FALSE(plain.has_value());
}

TEST_CASE("HTTPS: a keep-alive connection idle long enough to shed its session keeps its TLS state",
          "[integration][tls]") {
  certs c;
  test::running_server srv(tls_config(c));
  test::tls_client client(srv.port(), trusting(c.cert));
  REQUIRE(client.connected());
  REQUIRE(client.send(health));
  REQUIRE(client.read_response());
  // Idle for more than a second, the session ends and the connection parks:
  // only the two accept loops are coroutines then.
  REQUIRE(test::wait_until([&] { return srv.server().live().coroutines == 2; }, 5000ms));
  CHECK(srv.server().live().connections == 1);
  // The next request continues the same TLS session (a new handshake on
  // this connection would fail: the client does not start one).
  REQUIRE(client.send(health));
  auto r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  // And a pipelined pair after another idle spell.
  REQUIRE(test::wait_until([&] { return srv.server().live().coroutines == 2; }, 5000ms));
  REQUIRE(client.send(std::string(health) + std::string(health)));
  auto r1 = client.read_response();
  auto r2 = client.read_response();
  REQUIRE(r1);
  REQUIRE(r2);
  CHECK(r2->status == 200);
}

TEST_CASE("HTTPS start-up errors name the flag: missing, unreadable, not PEM, unpaired, key not matching",
          "[integration][tls]") {
  certs a;
  certs b;
  test::temp_dir dir;
  const std::string garbage = dir.file("garbage.pem");
  std::ofstream(garbage) << "this is not PEM\n";
  const std::string gateway = std::string(GATEWAY_BIN_DIR) + "/gateway";
  struct bad_case {
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<bad_case> cases = {
      {{"--tls-cert", dir.file("missing.pem"), "--tls-key", a.key}, "--tls-cert " + dir.file("missing.pem") + ": cannot open"},
      {{"--tls-cert", a.cert, "--tls-key", dir.file("missing.key")}, "--tls-key " + dir.file("missing.key") + ": cannot open"},
      {{"--tls-cert", dir.path(), "--tls-key", a.key}, "--tls-cert " + dir.path() + ": cannot read"},
      {{"--tls-cert", garbage, "--tls-key", a.key}, "--tls-cert " + garbage + ": no PEM certificate"},
      {{"--tls-cert", a.cert, "--tls-key", garbage}, "--tls-key " + garbage + ": no PEM private key"},
      {{"--tls-cert", a.cert, "--tls-key", b.key}, "--tls-key " + b.key + " does not match the certificate in --tls-cert " + a.cert},
      {{"--tls-cert", a.cert}, "--tls-cert: --tls-cert and --tls-key come in pairs"},
      {{"--tls", "self-signed", "--tls-cert", a.cert, "--tls-key", a.key}, "--tls self-signed: not together with --tls-cert"},
      {{"--tls", "on"}, "--tls: invalid value 'on'"},
      {{"--tls-ticket-rotation", "0s"}, "--tls-ticket-rotation: invalid value"},
  };
  for (const auto& bc : cases) {
    std::vector<std::string> argv{gateway, "--listen", "127.0.0.1:0", "--threads", "1"};
    argv.insert(argv.end(), bc.args.begin(), bc.args.end());
    test::child_process gw(argv);
    const auto status = gw.wait_exit(10s);
    INFO(bc.expect << "\nstderr: " << gw.err());
    CHECK(status == 2);
    CHECK(gw.err().find(bc.expect) != std::string::npos);
  }
}

TEST_CASE("HTTPS: the server name (SNI) picks the certificate, the first pair is the default",
          "[integration][tls]") {
  test::temp_dir dir;
  const std::string ca = dir.file("a.pem"), ka = dir.file("a.key"), cb = dir.file("b.pem"), kb = dir.file("b.key");
  test::make_certificate({"a.test", "localhost"}, ca, ka);
  test::make_certificate({"b.test", "*.b.test"}, cb, kb);
  auto cfg = test::test_config();
  cfg.tls_certs = {ca, cb};
  cfg.tls_keys = {ka, kb};
  test::running_server srv(cfg);
  auto name_for = [&](const std::string& sni) {
    test::tls_client_options o;
    o.server_name = sni;
    test::tls_client client(srv.port(), o);
    REQUIRE(client.connected());
    REQUIRE(client.send(health));
    REQUIRE(client.read_response());
    return client.peer_common_name();
  };
  CHECK(name_for("a.test") == "a.test");
  CHECK(name_for("b.test") == "b.test");
  CHECK(name_for("api.b.test") == "b.test");
  CHECK(name_for("B.TEST") == "b.test");
  CHECK(name_for("x.api.b.test") == "a.test");  // a wildcard covers one label only
  CHECK(name_for("other.test") == "a.test");
  CHECK(name_for("") == "a.test");
}

TEST_CASE("HTTPS session tickets resume TLS 1.2 and 1.3 sessions, on any worker, across one key rotation",
          "[integration][tls]") {
  certs c;
  auto cfg = tls_config(c);
  cfg.threads = 2;
  test::running_server srv(cfg);
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    INFO("version " << version);
    auto o = trusting(c.cert);
    o.min_version = o.max_version = version;
    SSL_SESSION* session = nullptr;
    {
      test::tls_client first(srv.port(), o);
      REQUIRE(first.connected());
      CHECK_FALSE(first.resumed());
      REQUIRE(first.send(health));
      REQUIRE(first.read_response());  // TLS 1.3 tickets come after the handshake
      session = first.take_session();
    }
    REQUIRE(session != nullptr);
    // Several connections: the kernel spreads them over both workers.
    for (int i = 0; i < 6; ++i) {
      o.session = session;
      test::tls_client again(srv.port(), o);
      REQUIRE(again.connected());
      CHECK(again.resumed());
      REQUIRE(again.send(health));
      REQUIRE(again.read_response());
    }
    // One rotation: the ticket's key is the previous one, still accepted.
    srv.app()->server().tls()->ticket_keys().rotate_for_test();
    {
      test::tls_client after_one(srv.port(), o);
      REQUIRE(after_one.connected());
      CHECK(after_one.resumed());
    }
    // Two: the key is gone, a full handshake follows.
    srv.app()->server().tls()->ticket_keys().rotate_for_test();
    {
      test::tls_client after_two(srv.port(), o);
      REQUIRE(after_two.connected());
      CHECK_FALSE(after_two.resumed());
    }
    SSL_SESSION_free(session);
  }
}
