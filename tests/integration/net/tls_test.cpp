// The gateway terminating HTTPS (net/tls_context.hpp, net/tls_stream.hpp):
// the gateway runs in-process (so the ASan build checks its TLS code), the
// clients are OpenSSL (tests/support/tls_client.hpp), curl and openssl
// s_client as child processes, and raw bytes. Certificates are made at test
// time with the openssl CLI.
#include <catch2/catch.hpp>

#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gateway/net/tls_buffer_cache.hpp"
#include "gateway/net/tls_context.hpp"
#include "tests/integration/core/test_handlers.hpp"
#include "tests/integration/dev/websocket_peer.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/files.hpp"
#include "tests/support/report.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/tcp_info.hpp"
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

// GET /big/?n=N answers N bytes of 'a' + i % 26 (i the byte's offset).
class big_body_handler final : public http::layer {
 public:
  http::step enter(http::exchange& ex, http::layer_state&) override {
    const auto at = ex.req.target.find("n=");
    const std::size_t n = at == std::string_view::npos ? 0 : std::stoul(std::string(ex.req.target.substr(at + 2)));
    std::string body(n, '\0');
    for (std::size_t i = 0; i < n; ++i) body[i] = static_cast<char>('a' + i % 26);
    http::respond_text(ex, 200, body);
    return http::step::answered;
  }
};

net::chain_factory echo_and_big_chain() {
  return [](net::worker_env&) {
    auto r = std::make_unique<app::router>();
    r->add_exact("/health", admin::make_health_page());
    r->add_prefix("/echo/", std::make_unique<test::echo_handler>());
    r->add_prefix("/big/", std::make_unique<big_body_handler>());
    return test::pipeline_of(std::move(r));
  };
}

test::tls_client_options trusting(const std::string& ca) {
  test::tls_client_options o;
  o.ca_file = ca;
  o.server_name = "localhost";
  return o;
}

// The same, offering only one protocol version (TLS1_3_VERSION, TLS1_2_VERSION).
test::tls_client_options trusting(const std::string& ca, int version) {
  auto o = trusting(ca);
  o.min_version = o.max_version = version;
  return o;
}

}  // namespace

TEST_CASE("HTTPS: TLS 1.3 and 1.2 clients get answers with ALPN http/1.1, several requests on one handshake",
          "[integration][tls]") {
  certs c;
  test::running_server srv(tls_config(c));
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    auto o = trusting(c.cert, version);
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

TEST_CASE(
    "HTTPS: the server's suite order picks AES-128-GCM over a client's AES-256-GCM-first offer, and serves "
    "clients that offer only the other suites",
    "[integration][tls]") {
  certs c;
  test::running_server srv(tls_config(c));
  const auto cipher_with = [&](const std::string& offered, int version) {
    auto o = trusting(c.cert, version);
    o.tls13_suites = offered;
    test::tls_client client(srv.port(), o);
    if (!client.connected()) return "no handshake: " + client.error();
    if (!client.send(health)) return std::string("no send");
    auto r = client.read_response();
    if (!r || r->status != 200) return std::string("no answer");
    return client.cipher();
  };
  // OpenSSL's own order, the one curl and s_client offer.
  CHECK(cipher_with("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256", TLS1_3_VERSION) ==
        "TLS_AES_128_GCM_SHA256");
  CHECK(cipher_with("TLS_AES_256_GCM_SHA384", TLS1_3_VERSION) == "TLS_AES_256_GCM_SHA384");
  CHECK(cipher_with("TLS_CHACHA20_POLY1305_SHA256", TLS1_3_VERSION) == "TLS_CHACHA20_POLY1305_SHA256");
  // TLS 1.2 follows the same profile (the certificate is ECDSA).
  CHECK(cipher_with("", TLS1_2_VERSION) == "ECDHE-ECDSA-AES128-GCM-SHA256");
}

TEST_CASE("HTTPS: a response head and its small body arrive in one TLS record, over TLS 1.3 and 1.2",
          "[integration][tls]") {
  certs c;
  test::running_server srv(tls_config(c));
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    auto o = trusting(c.cert, version);
    test::tls_client client(srv.port(), o);
    REQUIRE(client.connected());
    // The first exchange also reads the session ticket (TLS 1.3 sends it
    // after the handshake); the records of the later ones are the responses'.
    REQUIRE(client.send(health));
    REQUIRE(client.read_response());
    for (int i = 0; i < 3; ++i) {
      const std::size_t before = client.application_records();
      REQUIRE(client.send(health));
      auto r = client.read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK_FALSE(r->body.empty());
      CHECK(client.application_records() - before == 1);
    }
  }
}

TEST_CASE("HTTPS: a last response and its close_notify leave in one send, over TLS 1.3 and 1.2",
          "[integration][tls]") {
  // With them apart, a client reading up to close_notify (openssl s_time,
  // an HTTP/1.0 client) waits for a second segment. Counted by the
  // client's kernel: data segments received for the last response.
  certs c;
  test::running_server srv(tls_config(c));
  constexpr std::string_view last = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    for (int i = 0; i < 3; ++i) {
      auto o = trusting(c.cert, version);
      test::tls_client client(srv.port(), o);
      REQUIRE(client.connected());
      // The first exchange also reads the session ticket (TLS 1.3 sends it
      // after the handshake), so what arrives next is the last response's.
      REQUIRE(client.send(health));
      REQUIRE(client.read_response());
      const auto before = test::data_segments_in(client.fd());
      REQUIRE(before);
      REQUIRE(client.send(last));
      auto r = client.read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(client.wait_closed());
      CHECK(client.received_close_notify());
      const auto after = test::data_segments_in(client.fd());
      REQUIRE(after);
      CHECK(*after - *before == 1);
    }
  }
}

TEST_CASE("HTTPS: a 1 MiB upload and a 4 MiB response arrive intact, pipelined requests get every answer, over TLS "
          "1.3 and 1.2",
          "[integration][tls]") {
  // The stream receives into a 2 KiB buffer that grows to one record for
  // full-size records, and sends a large body in slices of its output
  // buffer: both are crossed many times here.
  certs c;
  const auto cfg = tls_config(c);
  test::running_server srv(cfg, echo_and_big_chain(), std::make_shared<net::tls_terminator>(cfg));
  std::string up(1u << 20, '\0');
  for (std::size_t i = 0; i < up.size(); ++i) up[i] = static_cast<char>('A' + (i * 7) % 26);
  const std::string expect_echo = "POST /echo/up " + std::to_string(up.size()) + " " + std::to_string(test::checksum(up));
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    auto o = trusting(c.cert, version);
    test::tls_client client(srv.port(), o);
    REQUIRE(client.connected());
    for (int round = 0; round < 2; ++round) {
      REQUIRE(client.send(test::make_request("POST", "/echo/up", up)));
      auto echoed = client.read_response();
      REQUIRE(echoed);
      CHECK(echoed->status == 200);
      CHECK(echoed->body == expect_echo + "\n");

      const std::size_t n = 4u << 20;
      REQUIRE(client.send(test::make_request("GET", "/big/?n=" + std::to_string(n))));
      auto big = client.read_response();
      REQUIRE(big);
      CHECK(big->status == 200);
      REQUIRE(big->body.size() == n + 1);
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < n; ++i) wrong += big->body[i] != static_cast<char>('a' + i % 26);
      CHECK(wrong == 0);
    }
    // Three requests in one TLS write (and one record): three answers, in order.
    std::string three;
    for (const char* t : {"/echo/1", "/echo/22", "/echo/333"}) three += test::make_request("GET", t);
    REQUIRE(client.send(three));
    for (const char* t : {"/echo/1", "/echo/22", "/echo/333"}) {
      auto r = client.read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->body.rfind(std::string("GET ") + t + " 0 ", 0) == 0);
    }
  }
}

TEST_CASE("HTTPS: a TLS 1.3 KeyUpdate that asks for one is answered, and requests go on after it", "[integration][tls]") {
  certs c;
  test::running_server srv(tls_config(c));
  auto o = trusting(c.cert, TLS1_3_VERSION);
  test::tls_client client(srv.port(), o);
  REQUIRE(client.connected());
  REQUIRE(client.send(health));
  REQUIRE(client.read_response());
  CHECK(client.key_updates_received() == 0);
  for (std::size_t i = 1; i <= 3; ++i) {
    // The KeyUpdate goes out with the request; the gateway's answering
    // KeyUpdate comes before the response, whose record is under its new
    // keys (the client could not decrypt it otherwise).
    REQUIRE(client.request_key_update());
    REQUIRE(client.send(health));
    auto r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(client.key_updates_received() == i);
  }
}

TEST_CASE("HTTPS: OpenSSL allocates through the record buffer cache, so a freed record buffer is reused on the thread",
          "[integration][tls]") {
  // The test binary installs it first thing in main(), as the gateway does.
  REQUIRE(net::tls_buffer_cache::installed());
  certs c;
  test::running_server srv(tls_config(c));
  std::vector<void*> taken;
  while (net::tls_buffer_cache::cached_for_test() > 0) taken.push_back(net::tls_buffer_cache::allocate(1 << 14));
  for (void* p : taken) std::free(p);
  {
    // This thread's client: its record buffers go back to this thread's
    // cache when the connection is freed.
    test::tls_client client(srv.port(), trusting(c.cert));
    REQUIRE(client.connected());
    REQUIRE(client.send(health));
    REQUIRE(client.read_response());
  }
  CHECK(net::tls_buffer_cache::cached_for_test() >= 2);
  // And the next connection takes them back.
  const std::size_t before = net::tls_buffer_cache::cached_for_test();
  test::tls_client again(srv.port(), trusting(c.cert));
  REQUIRE(again.connected());
  REQUIRE(again.send(health));
  REQUIRE(again.read_response());
  CHECK(net::tls_buffer_cache::cached_for_test() < before);
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

namespace {

// Sends `bytes` on `fd` one byte per `gap`, reading (and discarding) what
// arrives meanwhile, until the peer closes (end of stream or reset) or
// `limit` has passed. Returns how long after the first byte the peer
// closed, or nullopt if it did not within `limit`.
std::optional<std::chrono::milliseconds> trickle_until_closed(int fd, std::string_view bytes,
                                                              std::chrono::milliseconds gap,
                                                              std::chrono::milliseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  auto next_send = start;
  std::size_t sent = 0;
  while (std::chrono::steady_clock::now() - start < limit) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_send && sent < bytes.size()) {
      if (::send(fd, bytes.data() + sent, 1, MSG_NOSIGNAL) != 1) break;  // closed under us
      ++sent;
      next_send = now + gap;
    }
    pollfd p{fd, POLLIN, 0};
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_send - now);
    if (::poll(&p, 1, static_cast<int>(std::clamp<long long>(wait.count(), 1, 50))) > 0) {
      char sink[4096];
      if (::recv(fd, sink, sizeof sink, 0) <= 0) break;
    }
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  if (took >= limit) return std::nullopt;
  return took;
}

}  // namespace

TEST_CASE("HTTPS: a keep-alive client trickling an unfinished TLS record is cut by the header timeout, "
          "parked or not",
          "[integration][tls]") {
  // One byte every 1.3 s: longer than a session waits idle before it sheds
  // (1 s), so the connection parks between bytes and every byte resumes it;
  // shorter than the idle timeout, which each resume must not restart.
  certs c;
  auto cfg = tls_config(c);
  cfg.idle_timeout = 4s;
  cfg.header_timeout = 1s;
  test::running_server srv(cfg);
  // A record header announcing 16 KiB of application data, then its body:
  // OpenSSL gets ciphertext but no plaintext until the record is complete.
  std::string record("\x17\x03\x03\x40\x00", 5);
  record.append(16384, '\0');
  for (const bool parked_first : {false, true}) {
    CAPTURE(parked_first);
    test::tls_client client(srv.port(), trusting(c.cert));
    REQUIRE(client.connected());
    REQUIRE(client.send(health));
    REQUIRE(client.read_response());
    if (parked_first)
      REQUIRE(test::wait_until([&] { return srv.server().live().coroutines == 2; }, 5000ms));
    const auto timeouts_before = srv.server().live().timeouts;
    // Within the header timeout of the first byte, plus the sweep's period
    // (250 ms) and the second a session waits before it sheds.
    const auto closed = trickle_until_closed(client.fd(), record, 1300ms, 7000ms);
    REQUIRE(closed);
    CHECK(*closed < 2600ms);
    CHECK(srv.server().live().timeouts == timeouts_before + 1);
  }
  CHECK(srv.server().live().session_exceptions == 0);
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

TEST_CASE("HTTPS: --check-config loads the certificate files and says what is wrong with them", "[integration][tls]") {
  certs a;
  certs b;
  const std::string gateway = std::string(GATEWAY_BIN_DIR) + "/gateway";
  test::child_process ok({gateway, "--check-config", "--tls-cert", a.cert, "--tls-key", a.key});
  REQUIRE(ok.wait_exit(10s) == 0);
  CHECK(ok.out().find("TLS certificates: localhost (" + a.cert + ", default)") != std::string::npos);
  test::child_process bad({gateway, "--check-config", "--tls-cert", a.cert, "--tls-key", b.key});
  REQUIRE(bad.wait_exit(10s) == 1);
  CHECK(bad.err().find("--tls-key " + b.key + " does not match the certificate in --tls-cert " + a.cert) !=
        std::string::npos);
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

TEST_CASE("HTTPS: with SNI an exact name wins over a wildcard listed before it, in any letter case",
          "[integration][tls]") {
  test::temp_dir dir;
  const std::string cw = dir.file("wild.pem"), kw = dir.file("wild.key"), ce = dir.file("api.pem"),
                    ke = dir.file("api.key"), co = dir.file("other.pem"), ko = dir.file("other.key");
  test::make_certificate({"*.example.test"}, cw, kw);
  test::make_certificate({"api.example.test"}, ce, ke);
  test::make_certificate({"other.test", "*.other.test"}, co, ko);
  auto cfg = test::test_config();
  cfg.tls_certs = {cw, ce, co};
  cfg.tls_keys = {kw, ke, ko};
  test::running_server srv(cfg);
  auto name_for = [&](const std::string& sni) {
    test::tls_client_options o;
    o.server_name = sni;
    test::tls_client client(srv.port(), o);
    REQUIRE(client.connected());
    return client.peer_common_name();
  };
  CHECK(name_for("api.example.test") == "api.example.test");
  CHECK(name_for("API.Example.TEST") == "api.example.test");
  CHECK(name_for("www.example.test") == "*.example.test");
  CHECK(name_for("other.test") == "other.test");
  CHECK(name_for("a.other.test") == "other.test");
  CHECK(name_for("elsewhere.test") == "*.example.test");
}

TEST_CASE("HTTPS session tickets resume TLS 1.2 and 1.3 sessions, on any worker, across one key rotation",
          "[integration][tls]") {
  certs c;
  auto cfg = tls_config(c);
  cfg.threads = 2;
  test::running_server srv(cfg);
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    INFO("version " << version);
    auto o = trusting(c.cert, version);
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
  // Per version: the first, six resumed, one resumed after a rotation, one
  // full after two. The last two send nothing, so the server may finish
  // their handshakes after the client returns.
  CHECK(test::wait_until([&] { return srv.server().live().tls_handshakes == 18; }, 5000ms));
  CHECK(srv.server().live().tls_resumed == 14);
  CHECK(srv.server().live().tls_failures == 0);
  // Plain HTTP on the TLS listener gets no answer and counts as a failure.
  CHECK_FALSE(test::http_request(srv.port(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").has_value());
  CHECK(test::wait_until([&] { return srv.server().live().tls_failures == 1; }, 5000ms));
}

TEST_CASE("HTTPS reload: new certificates for new connections, open ones untouched, a bad file refused",
          "[integration][tls]") {
  test::temp_dir dir;
  const std::string cert = dir.file("site.pem"), key = dir.file("site.key");
  test::make_certificate({"old.test"}, cert, key);
  auto cfg = test::test_config();
  cfg.tls_certs = {cert};
  cfg.tls_keys = {key};
  test::running_server srv(cfg);
  test::tls_client_options o;
  o.server_name = "old.test";
  test::tls_client open_before(srv.port(), o);
  REQUIRE(open_before.connected());
  CHECK(open_before.peer_common_name() == "old.test");

  test::make_certificate({"new.test"}, cert, key);
  std::string message;
  REQUIRE(srv.app()->reload(cfg, message));
  CHECK(message.find("TLS certificates: new.test (" + cert + ", default)") != std::string::npos);
  {
    test::tls_client after(srv.port(), o);
    REQUIRE(after.connected());
    CHECK(after.peer_common_name() == "new.test");
  }
  // The connection made before the reload goes on with its session.
  REQUIRE(open_before.send(health));
  auto r = open_before.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);

  // A certificate file that no longer parses: the reload is refused and the
  // certificates in use stay.
  std::ofstream(cert, std::ios::trunc) << "-----BEGIN CERTIFICATE-----\nbroken\n";
  CHECK_FALSE(srv.app()->reload(cfg, message));
  CHECK(message == "--tls-cert " + cert + ": no PEM certificate in it");
  test::tls_client still(srv.port(), o);
  REQUIRE(still.connected());
  CHECK(still.peer_common_name() == "new.test");
}

namespace {

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

}  // namespace

TEST_CASE("HTTPS: a certificate file whose intermediate is cut short or damaged is refused on reload, the chain in "
          "use stays",
          "[integration][tls]") {
  test::temp_dir dir;
  const auto chain = test::make_certificate_chain({"localhost"}, dir.path());
  const std::string leaf = file_text(chain.leaf), intermediate = file_text(chain.intermediate);
  const std::string key_text = file_text(chain.key);
  REQUIRE(intermediate.size() > 200);
  const std::string live = dir.file("live.pem");
  write_text(live, leaf + intermediate);
  auto cfg = test::test_config();
  cfg.tls_certs = {live};
  cfg.tls_keys = {chain.key};
  test::running_server srv(cfg);
  // Trusting the root only: the handshake verifies only when the gateway
  // sends the intermediate too.
  const auto verified = [&] {
    test::tls_client c(srv.port(), trusting(chain.ca));
    INFO(c.error());
    return c.connected() && c.peer_common_name() == "localhost";
  };
  REQUIRE(verified());

  // The body's first line (the DER header) replaced by zero bytes.
  std::string corrupt = intermediate;
  const auto body = corrupt.find('\n') + 1;
  for (auto i = body; corrupt[i] != '\n'; ++i) corrupt[i] = 'A';
  struct damaged_case {
    std::string what, text;
    int bad;  // the certificate the message names
  };
  const std::vector<damaged_case> damaged = {
      {"the first 200 bytes of the intermediate", leaf + intermediate.substr(0, 200), 2},
      {"its BEGIN line only", leaf + intermediate.substr(0, intermediate.find('\n') + 1), 2},
      {"part of its BEGIN line", leaf + intermediate.substr(0, 20), 2},
      {"a damaged body", leaf + corrupt, 2},
      {"the intermediate and a stray END line", leaf + intermediate + "-----END CERTIFICATE-----\n", 3},
  };
  for (const auto& d : damaged) {
    INFO("the leaf and " << d.what);
    write_text(live, d.text);
    std::string message;
    CHECK_FALSE(srv.app()->reload(cfg, message));
    INFO(message);
    CHECK(message.find("--tls-cert " + live + ": certificate " + std::to_string(d.bad) +
                       " in the file is cut short or damaged") == 0);
    CHECK(verified());
  }

  // A private key kept after the chain in the same file is a whole PEM
  // block of another kind: accepted.
  write_text(live, leaf + intermediate + key_text);
  std::string message;
  CHECK(srv.app()->reload(cfg, message));
  CHECK(verified());
  // The leaf alone is a valid file, and a client trusting the root alone
  // then fails: what a damaged file installed would have done.
  write_text(live, leaf);
  CHECK(srv.app()->reload(cfg, message));
  CHECK_FALSE(verified());
}

TEST_CASE("HTTPS: the binary refuses a certificate file with a cut-short intermediate at start and in --check-config",
          "[integration][tls]") {
  test::temp_dir dir;
  const auto chain = test::make_certificate_chain({"localhost"}, dir.path());
  const std::string bad = dir.file("chain_bad.pem");
  write_text(bad, file_text(chain.leaf) + file_text(chain.intermediate).substr(0, 200));
  const std::string gateway = std::string(GATEWAY_BIN_DIR) + "/gateway";
  const std::string expect = "--tls-cert " + bad + ": certificate 2 in the file is cut short or damaged";
  test::child_process check({gateway, "--check-config", "--tls-cert", bad, "--tls-key", chain.key});
  CHECK(check.wait_exit(10s) == 1);
  CHECK(check.out().find("configuration OK") == std::string::npos);
  CHECK(check.err().find(expect) != std::string::npos);
  test::child_process start({gateway, "--listen", "127.0.0.1:0", "--threads", "1", "--tls-cert", bad, "--tls-key",
                             chain.key});
  CHECK(start.wait_exit(10s) == 2);
  CHECK(start.err().find(expect) != std::string::npos);
}

TEST_CASE("HTTPS: SIGHUP makes the gateway binary read its certificate files again", "[integration][tls]") {
  test::temp_dir dir;
  const std::string cert = dir.file("site.pem"), key = dir.file("site.key");
  test::make_certificate({"first.test"}, cert, key);
  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--threads", "1",
                          "--access-log", "off", "--tls-cert", cert, "--tls-key", key});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  REQUIRE(listening);
  CHECK(listening->find("(HTTPS)") != std::string::npos);
  const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  REQUIRE(port != 0);
  test::tls_client_options o;
  {
    test::tls_client c(port, o);
    REQUIRE(c.connected());
    CHECK(c.peer_common_name() == "first.test");
  }
  test::make_certificate({"second.test"}, cert, key);
  const std::size_t from = gw.err().size();
  gw.signal(SIGHUP);
  REQUIRE(gw.wait_for_line("configuration reloaded", true, 10s, from));
  {
    test::tls_client c(port, o);
    REQUIRE(c.connected());
    CHECK(c.peer_common_name() == "second.test");
  }
  std::ofstream(key, std::ios::trunc) << "not a key\n";
  const std::size_t from2 = gw.err().size();
  gw.signal(SIGHUP);
  const auto refused = gw.wait_for_line("reload REFUSED", true, 10s, from2);
  REQUIRE(refused);
  CHECK(refused->find("--tls-key " + key + ": no PEM private key") != std::string::npos);
  {
    test::tls_client c(port, o);
    REQUIRE(c.connected());
    CHECK(c.peer_common_name() == "second.test");
  }
  gw.signal(SIGTERM);
  CHECK(gw.wait_exit(10s) == 0);
}

TEST_CASE("self-signed TLS (--tls self-signed): curl --cacert trusts the written PEM for localhost and 127.0.0.1, its fingerprint "
          "is printed",
          "[integration][tls]") {
  const std::string curl = test::find_program("curl");
  const std::string openssl = test::find_program("openssl");
  GATEWAY_REQUIRE_AVAILABLE(!curl.empty() && !openssl.empty(), "curl and openssl are needed (scripts/deps.sh)");
  test::temp_dir dir;
  const std::string pem = dir.file("dev.pem");
  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--threads", "1",
                          "--access-log", "off", "--tls", "self-signed", "--tls-self-signed-pem", pem});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  REQUIRE(listening);
  const auto port = test::port_after_listening_on(*listening);
  REQUIRE(port != 0);
  REQUIRE(gw.wait_for_line("certificate written to " + pem, true, 5s));
  const auto printed = gw.err().find("SHA-256 fingerprint ");
  REQUIRE(printed != std::string::npos);
  const std::string fingerprint = gw.err().substr(printed + 20, 95);

  test::child_process fp({openssl, "x509", "-in", pem, "-noout", "-fingerprint", "-sha256"});
  REQUIRE(fp.wait_exit(10s) == 0);
  CHECK(fp.out().find("=" + fingerprint) != std::string::npos);

  for (const std::string host : {"localhost", "127.0.0.1"}) {
    const std::string url = "https://" + host + ":" + std::to_string(port) + "/health";
    test::child_process c({curl, "-sS", "--max-time", "10", "--cacert", pem, "-o", "-", "-w", "\n%{http_code}", url});
    REQUIRE(c.wait_exit(15s) == 0);
    INFO(c.out() << c.err());
    CHECK(c.out().find("\"healthy\"") != std::string::npos);
    CHECK(c.out().substr(c.out().size() - 3) == "200");
  }
  // Without --cacert, curl does not trust it.
  test::child_process untrusted(
      {curl, "-sS", "--max-time", "10", "https://localhost:" + std::to_string(port) + "/health"});
  CHECK(untrusted.wait_exit(15s) != 0);
  gw.signal(SIGTERM);
  CHECK(gw.wait_exit(10s) == 0);
}

TEST_CASE("HTTPS: a proxied request tells the backend X-Forwarded-Proto: https, whatever the client sent",
          "[integration][tls]") {
  test::recording_backend backend;
  certs c;
  auto cfg = tls_config(c);
  std::string err;
  REQUIRE(core::add_route("/r/", backend.url(), cfg.routes, err));
  test::running_server srv(cfg);
  test::tls_client client(srv.port(), trusting(c.cert));
  REQUIRE(client.connected());
  REQUIRE(
      client.send("GET /r/x HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: http\r\n"
                  "Forwarded: for=6.6.6.6;proto=http\r\n\r\n"));
  auto r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  const auto got = backend.requests();
  REQUIRE(got.size() == 1);
  INFO(got[0].raw);
  CHECK(got[0].raw.find("\r\nX-Forwarded-Proto: https\r\n") != std::string::npos);
  CHECK(got[0].raw.find("X-Forwarded-Proto: http\r\n") == std::string::npos);
  CHECK(got[0].raw.find("Forwarded: for") == std::string::npos);
}

TEST_CASE("self-signed TLS (--tls self-signed): a WebSocket tunnel runs over TLS both ways", "[integration][tls]") {
  test::ws::echo_server backend;
  test::temp_dir dir;
  auto cfg = test::test_config();
  cfg.tls_mode = "self-signed";
  cfg.tls_self_signed_pem = dir.file("dev.pem");
  std::string err;
  REQUIRE(core::add_route("/ws/", backend.url(), cfg.routes, err));
  test::running_server srv(cfg);
  auto client_owner = std::make_unique<test::tls_client>(srv.port(), trusting(cfg.tls_self_signed_pem));
  auto& client = *client_owner;
  REQUIRE(client.connected());
  REQUIRE(client.send("GET /ws/chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  auto head = client.read_head();
  REQUIRE(head);
  CHECK(head->rfind("HTTP/1.1 101 ", 0) == 0);
  int matched = 0;
  for (int i = 0; i < 50; ++i) {
    std::string msg = "message " + std::to_string(i);
    if (i % 10 == 0) msg.append(40000, 'x');  // more than one TLS record
    REQUIRE(client.send(test::ws::encode({true, 0x1, msg}, true)));
    auto h = client.read_exact(2);
    REQUIRE(h);
    std::uint64_t n = static_cast<unsigned char>((*h)[1]) & 0x7f;
    if (n == 126) {
      auto ext = client.read_exact(2);
      REQUIRE(ext);
      n = (static_cast<unsigned char>((*ext)[0]) << 8) | static_cast<unsigned char>((*ext)[1]);
    } else if (n == 127) {
      auto ext = client.read_exact(8);
      REQUIRE(ext);
      n = 0;
      for (char c : *ext) n = (n << 8) | static_cast<unsigned char>(c);
    }
    auto payload = client.read_exact(static_cast<std::size_t>(n));
    REQUIRE(payload);
    if (*payload == msg) ++matched;
  }
  CHECK(matched == 50);
  REQUIRE(client.send(test::ws::encode({true, 0x8, std::string("\x03\xe8", 2)}, true)));
  CHECK(client.wait_closed());
  client_owner.reset();  // our FIN: the tunnel's other direction ends
  CHECK(test::wait_until([&] { return srv.server().live().connections == 0; }, 5s));
}

namespace {

// The first bytes of a TLS ClientHello (RFC 8446 section 4.1.2): a
// handshake record announcing 512 bytes, of which only these arrive.
std::string partial_client_hello() {
  std::string b = "\x16\x03\x01\x02\x00"  // record: handshake, TLS 1.0 record version, 512 bytes
                  "\x01\x00\x01\xfc"      // ClientHello, 508 bytes
                  "\x03\x03";             // legacy_version TLS 1.2
  b.append(32, '\x5a');                   // random
  return b;
}

}  // namespace

TEST_CASE("hostile TLS: a stalled handshake is cut by the header timeout, garbage instead of a ClientHello is "
          "closed at once",
          "[integration][tls]") {
  certs c;
  auto cfg = tls_config(c);
  cfg.header_timeout = 300ms;
  test::running_server srv(cfg);
  {
    const auto start = std::chrono::steady_clock::now();
    test::raw_client silent(srv.port());  // connects and sends nothing
    CHECK(silent.wait_closed());
    CHECK(std::chrono::steady_clock::now() - start < 3s);
  }
  {
    const auto start = std::chrono::steady_clock::now();
    test::raw_client stalled(srv.port());
    REQUIRE(stalled.send(partial_client_hello()));  // and never the rest
    CHECK(stalled.wait_closed());
    CHECK(std::chrono::steady_clock::now() - start < 3s);
  }
  CHECK(srv.server().live().timeouts >= 2);
  CHECK(srv.server().live().tls_timeouts == 2);
  for (std::string_view garbage :
       {std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), std::string_view("\x16\x03\x01\x00\x05hello", 10),
        std::string_view("\x16\x03\x03\x40\x00", 5), std::string_view("\x80\x2e\x01\x03\x01", 5)}) {
    test::raw_client bad(srv.port(), 5000ms);
    REQUIRE(bad.send(std::string(garbage) + std::string(600, '\x01')));
    CHECK(bad.wait_closed());
  }
  // Not TLS, a malformed handshake message and an SSLv2 hello fail at once;
  // a record header that announces 16 KiB and sends 600 bytes waits for the
  // rest until the header timeout.
  CHECK(test::wait_until([&] {
    const auto l = srv.server().live();
    return l.tls_failures == 3 && l.tls_timeouts == 3;
  }, 5000ms));
  CHECK(srv.server().live().tls_handshakes == 0);
  // Still serving.
  test::tls_client good(srv.port(), trusting(c.cert));
  REQUIRE(good.connected());
  REQUIRE(good.send(health));
  REQUIRE(good.read_response());
  CHECK(srv.server().live().session_exceptions == 0);
}

TEST_CASE("hostile TLS: a TLS 1.0 or 1.1 client is refused, a renegotiation is refused without harm",
          "[integration][tls]") {
  certs c;
  test::running_server srv(tls_config(c));
  for (int old : {TLS1_VERSION, TLS1_1_VERSION}) {
    auto o = trusting(c.cert);
    o.max_version = old;
    test::tls_client client(srv.port(), o);
    CHECK_FALSE(client.connected());
    INFO(client.error());
    CHECK(client.error().find("protocol version") != std::string::npos);  // the server's alert
  }
  CHECK(test::wait_until([&] { return srv.server().live().tls_failures == 2; }, 5000ms));
  {
    auto o = trusting(c.cert);
    o.max_version = TLS1_2_VERSION;
    test::tls_client client(srv.port(), o);
    REQUIRE(client.connected());
    REQUIRE(client.send(health));
    REQUIRE(client.read_response());
    CHECK_FALSE(client.renegotiate());
  }
  // openssl s_client's own renegotiation ('R' on its input) is refused too.
  const std::string openssl = test::find_program("openssl");
  GATEWAY_REQUIRE_AVAILABLE(!openssl.empty(), "openssl is needed (scripts/deps.sh)");
  test::temp_dir dir;
  const std::string script = dir.file("renegotiate.sh");
  std::ofstream(script) << "(sleep 0.5; printf 'R\\n'; sleep 1) | " << openssl << " s_client -connect 127.0.0.1:"
                        << srv.port() << " -tls1_2 2>&1\n";
  test::child_process sc({"/bin/sh", script});
  REQUIRE(sc.wait_exit(20s));
  INFO(sc.out());
  CHECK(sc.out().find("RENEGOTIATING") != std::string::npos);
  CHECK(sc.out().find("no renegotiation") != std::string::npos);
  test::tls_client after(srv.port(), trusting(c.cert));
  REQUIRE(after.connected());
  REQUIRE(after.send(health));
  REQUIRE(after.read_response());
  CHECK(srv.server().live().session_exceptions == 0);
}

TEST_CASE("hostile TLS: 1,000 half-open handshakes beside normal clients: the clients are served, memory stays "
          "bounded and comes back",
          "[integration][tls]") {
  certs c;
  auto cfg = tls_config(c);
  cfg.header_timeout = 3s;
  test::running_server srv(cfg);
  {
    // Warm up (the first handshakes load OpenSSL's tables).
    test::tls_client warm(srv.port(), trusting(c.cert));
    REQUIRE(warm.connected());
  }
  const std::size_t before = test::rss_bytes();
  std::vector<std::unique_ptr<test::raw_client>> half_open;
  for (int i = 0; i < 1000; ++i) {
    half_open.push_back(std::make_unique<test::raw_client>(srv.port(), 10000ms));
    REQUIRE(half_open.back()->send(partial_client_hello()));
  }
  REQUIRE(test::wait_until([&] { return srv.server().live().connections >= 1000; }, 10s));
  int served = 0;
  for (int i = 0; i < 20; ++i) {
    test::tls_client client(srv.port(), trusting(c.cert));
    if (!client.connected() || !client.send(health)) continue;
    auto r = client.read_response();
    if (r && r->status == 200) ++served;
  }
  CHECK(served == 20);
  const std::size_t during = test::rss_bytes();
  const double per_connection = (static_cast<double>(during) - static_cast<double>(before)) / 1000.0;
  INFO("RSS per half-open handshake: " << per_connection << " bytes");
  // OpenSSL's record buffer and handshake buffer (about 17 and 16 KiB) are
  // held while a handshake waits for the rest of a record.
  if (test::rss_checks_apply) CHECK(per_connection < 64 * 1024);
  // The header timeout ends every one of them.
  CHECK(test::wait_until([&] { return srv.server().live().connections == 0; }, 10s));
  int closed = 0;
  for (auto& h : half_open) closed += h->wait_closed() ? 1 : 0;
  CHECK(closed == 1000);
  half_open.clear();
  // The gateway's housekeeping gives freed memory back within seconds.
  if (test::rss_checks_apply)
    CHECK(test::wait_until([&] { return test::rss_bytes() < before + 8 * 1024 * 1024; }, 10s));
  CHECK(srv.server().live().session_exceptions == 0);
}

TEST_CASE("redirect to HTTPS (--redirect-http): plain HTTP on its port gets 308 to https, curl follows it to the TLS listener",
          "[integration][tls]") {
  const std::string curl = test::find_program("curl");
  GATEWAY_REQUIRE_AVAILABLE(!curl.empty(), "curl is needed (scripts/deps.sh)");
  certs c;
  auto cfg = tls_config(c);
  cfg.redirect_http = 0;
  test::running_server srv(cfg);
  const std::uint16_t plain = srv.server().redirect_port();
  REQUIRE(plain != 0);
  auto r = test::http_request(plain, "GET /health?x=1 HTTP/1.1\r\nHost: localhost:" + std::to_string(plain) + "\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 308);
  CHECK(r->header("location") == "https://localhost:" + std::to_string(srv.port()) + "/health?x=1");
  auto bad = test::http_request(plain, "GET /health HTTP/1.1\r\n\r\n");
  REQUIRE(bad);
  CHECK(bad->status == 400);
  test::child_process follow({curl, "-sS", "-L", "--max-time", "10", "--cacert", c.cert, "-o", "-", "-w",
                              "\n%{http_code} %{num_redirects}", "http://localhost:" + std::to_string(plain) + "/health"});
  REQUIRE(follow.wait_exit(15s) == 0);
  INFO(follow.out() << follow.err());
  CHECK(follow.out().find("\"healthy\"") != std::string::npos);
  CHECK(follow.out().find("\n200 1") != std::string::npos);
}

TEST_CASE("2,000 idle TLS connections after a request each: parked, RSS per connection within the README's bound",
          "[integration][tls]") {
  // The gateway runs as its own process, so that its RSS is not mixed with
  // the clients' OpenSSL objects in this one.
  REQUIRE(test::raise_descriptor_limit() >= 2300);
  certs c;
  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--threads", "2",
                          "--backend", "http://127.0.0.1:9", "--tls-cert", c.cert, "--tls-key", c.key,
                          "--access-log", "off", "--rate-limit", "off", "--idle-timeout", "300s"});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  REQUIRE(listening);
  const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  REQUIRE(port != 0);
  const pid_t pid = gw.pid();
  for (int i = 0; i < 3; ++i) {
    test::tls_client warm(port, trusting(c.cert));
    REQUIRE(warm.connected());
    REQUIRE(warm.send(health));
    REQUIRE(warm.read_response());
  }
  std::this_thread::sleep_for(2500ms);  // past a housekeeping trim
  const std::size_t before = test::rss_of(pid);

  constexpr int n = 2000;
  std::vector<std::unique_ptr<test::tls_client>> held;
  held.reserve(n);
  for (int i = 0; i < n; ++i) {
    auto client = std::make_unique<test::tls_client>(port, trusting(c.cert));
    if (!client->connected() || !client->send(health)) break;
    auto r = client->read_response();
    if (!r || r->status != 200) break;
    held.push_back(std::move(client));
  }
  REQUIRE(held.size() == static_cast<std::size_t>(n));
  // Each sheds its session after a second idle and parks: no
  // connection_state, no coroutine, its SSL object in the lot's record.
  CHECK(test::wait_until([&] { return test::tls_metric(port, "gauges", "parked_connections") == n; }, 20s));
  std::this_thread::sleep_for(2500ms);  // past the housekeeping trim (every 2 s)
  const std::size_t after = test::rss_of(pid);
  const double per = (static_cast<double>(after) - static_cast<double>(before)) / n;
  INFO("gateway RSS " << before / 1024 << " -> " << after / 1024 << " KiB: " << per << " B per idle TLS connection");
  // README, "Memory" under HTTPS: at most what nginx's grows by in the same
  // measure (not under the sanitizers, whose allocator keeps freed memory
  // in quarantine).
  if (test::rss_checks_apply) CHECK(per <= 20 * 1024);
  GATEWAY_REPORT("2,000 idle TLS connections: " << per << " B RSS per connection");

  // A parked connection continues its TLS session: it leaves the lot, is
  // answered, and the others stay parked.
  auto& one = *held[n / 2];
  REQUIRE(one.send(health));
  auto r = one.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(test::tls_metric(port, "gauges", "parked_connections") == n - 1);
}
