// https:// backends (issue 16 item 2): verification against the system
// store and --upstream-ca, SNI and the certificate name, pooled TLS
// connections, session resumption, streamed bodies, WebSocket over TLS,
// Host per route, active health checks over TLS, and the binary's start-up
// errors and log lines. The TLS material is made by the openssl CLI at test
// time (tests/support/tls_backend.hpp).
#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "gateway/core/config.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/tls_backend.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// The gateway with one route /t/ -> `backend` (prefix removed, no auth),
// one worker so that a pool is the only pool.
core::config tls_config(const std::string& backend) {
  core::config cfg = test::test_config();
  cfg.threads = 1;
  cfg.rate_limit_enabled = false;
  std::string err;
  REQUIRE(core::add_route("/t/", backend, cfg.routes, err));
  return cfg;
}

// One https backend with a certificate for localhost and 127.0.0.1 from the
// test CA, and the gateway in front of it (tls_config) trusting that CA,
// started after `adjust` edits its configuration; `host` names the backend
// in the route's URL.
struct verified_upstream {
  explicit verified_upstream(const std::function<void(core::config&)>& adjust = nullptr,
                             const std::string& host = "localhost") {
    core::config cfg = tls_config(backend.url(host));
    cfg.upstream_ca = {tls.ca};
    if (adjust) adjust(cfg);
    srv.emplace(cfg);
  }
  test::tls_material tls;
  test::tls_backend backend{tls.cert, tls.key};
  std::optional<test::running_server> srv;
};

std::optional<test::http_response> get(std::uint16_t port, std::string_view target) {
  return test::http_request(port, test::make_request("GET", target));
}

// Reads from `fd` until `needle` is in what was read, or `limit` passes.
std::string read_until(int fd, std::string_view needle, std::chrono::milliseconds limit) {
  std::string got;
  const auto until = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  while (got.find(needle) == std::string::npos && std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// The "checks_failed" figure of the member `url` (a name: the member is
// its one address, localhost's 127.0.0.1) in /metrics' upstream_members, or -1.
long long checks_failed(std::uint16_t port, const std::string& url) {
  auto r = get(port, "/metrics");
  if (!r) return -1;
  const auto at = r->body.find("\"member\":\"" + url + " (127.0.0.1)\"");
  if (at == std::string::npos) return -1;
  const auto key = r->body.find("\"checks_failed\":", at);
  if (key == std::string::npos) return -1;
  return std::stoll(r->body.substr(key + 16));
}

}  // namespace

TEST_CASE("https upstream: verified with --upstream-ca, and 20 keep-alive requests use one TLS connection",
          "[integration][proxy][tls]") {
  verified_upstream u;
  auto& backend = u.backend;
  auto& srv = *u.srv;
  test::raw_client c(srv.port());
  for (int i = 0; i < 20; ++i) {
    REQUIRE(c.send(test::make_request("GET", "/t/x")));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "host=test sni=localhost");  // the client's Host, SNI of the backend's name
  }
  CHECK(backend.requests.load() == 20);
  CHECK(backend.connections.load() == 1);
  // The gateway offers TLS 1.3's suites in the listener's order, AES-128-GCM
  // first; this backend takes the client's order.
  CHECK(backend.last_cipher() == "TLS_AES_128_GCM_SHA256");
  CHECK(backend.handshakes.load() == 1);
  CHECK(test::counter(srv.port(), "upstream_tls_handshakes") == 1);
  CHECK(test::counter(srv.port(), "upstream_reused") == 19);
}

TEST_CASE("https upstream: an unknown CA, a certificate for another name or an untrusted CA file get 502, counted",
          "[integration][proxy][tls]") {
  test::tls_material tls;
  test::tls_backend good(tls.cert, tls.key);
  test::tls_backend wrong(tls.wrong_cert, tls.wrong_key);
  SECTION("no --upstream-ca: the test CA is not in the system store") {
    test::running_server srv(tls_config(good.url()));
    auto r = get(srv.port(), "/t/x");
    REQUIRE(r);
    CHECK(r->status == 502);
    CHECK(test::counter(srv.port(), "upstream_tls_verify_failures") == 1);
    CHECK(test::counter(srv.port(), "upstream_bad_gateway") == 1);
  }
  SECTION("--upstream-ca of another CA") {
    core::config cfg = tls_config(good.url());
    cfg.upstream_ca = {tls.other_ca};
    test::running_server srv(cfg);
    auto r = get(srv.port(), "/t/x");
    REQUIRE(r);
    CHECK(r->status == 502);
    CHECK(test::counter(srv.port(), "upstream_tls_verify_failures") == 1);
  }
  SECTION("a trusted certificate for wrong.example, reached as localhost and as 127.0.0.1") {
    for (const char* host : {"localhost", "127.0.0.1"}) {
      INFO(host);
      core::config cfg = tls_config(wrong.url(host));
      cfg.upstream_ca = {tls.ca};
      test::running_server srv(cfg);
      auto r = get(srv.port(), "/t/x");
      REQUIRE(r);
      CHECK(r->status == 502);
      CHECK(test::counter(srv.port(), "upstream_tls_verify_failures") == 1);
    }
  }
  CHECK(good.requests.load() == 0);
  CHECK(wrong.requests.load() == 0);
}

TEST_CASE("https upstream: an IP-literal backend is checked against the certificate's IP address, without SNI",
          "[integration][proxy][tls]") {
  verified_upstream u(nullptr, "127.0.0.1");
  auto& srv = *u.srv;
  auto r = get(srv.port(), "/t/x");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "host=test sni=");  // RFC 6066 section 3: no IP literal in SNI
}

TEST_CASE("https upstream: --upstream-insecure accepts an unknown CA and a wrong name", "[integration][proxy][tls]") {
  test::tls_material tls;
  test::tls_backend wrong(tls.wrong_cert, tls.wrong_key);
  core::config cfg = tls_config(wrong.url());
  cfg.upstream_insecure = true;
  test::running_server srv(cfg);
  auto r = get(srv.port(), "/t/x");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "host=test sni=localhost");
  CHECK(test::counter(srv.port(), "upstream_tls_verify_failures") == 0);
}

TEST_CASE("https upstream: a new connection resumes the session the previous one got", "[integration][proxy][tls]") {
  // no pooling: every request connects anew
  verified_upstream u([](core::config& cfg) { cfg.upstream_max_idle = 0; });
  auto& backend = u.backend;
  auto& srv = *u.srv;
  for (int i = 0; i < 4; ++i) {
    auto r = get(srv.port(), "/t/x");
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  CHECK(backend.connections.load() == 4);
  CHECK(backend.handshakes.load() == 4);
  CHECK(backend.resumed.load() == 3);  // only the first handshake was a full one
  CHECK(test::counter(srv.port(), "upstream_tls_resumed") == 3);
}

TEST_CASE("https upstream: an 8 MiB body goes up and back, and a 48 MiB response streams down",
          "[integration][proxy][tls]") {
  verified_upstream u;
  auto& backend = u.backend;
  auto& srv = *u.srv;
  test::raw_client c(srv.port(), 30000ms);
  std::string up(8u << 20, '\0');
  for (std::size_t i = 0; i < up.size(); ++i) up[i] = static_cast<char>('A' + (i * 7) % 26);
  REQUIRE(c.send(test::make_request("POST", "/t/echo", up)));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body.size() == up.size());
  CHECK(r->body == up);
  const std::size_t n = 48u << 20;
  REQUIRE(c.send(test::make_request("GET", "/t/big?n=" + std::to_string(n))));
  auto big = c.read_response();
  REQUIRE(big);
  CHECK(big->status == 200);
  REQUIRE(big->body.size() == n);
  bool pattern = true;
  for (std::size_t i = 0; i < n; i += 4093) pattern = pattern && big->body[i] == static_cast<char>('a' + i % 26);
  CHECK(pattern);
  CHECK(backend.connections.load() == 1);  // both on one pooled TLS connection
}

TEST_CASE("https upstream: a close-delimited body ends at close_notify, and one cut without it reaches the client "
          "as incomplete",
          "[integration][proxy][tls]") {
  verified_upstream u;
  auto& backend = u.backend;
  auto& srv = *u.srv;
  const std::size_t n = 100000;
  std::string expected;
  for (std::size_t i = 0; i < n; ++i) expected.push_back(static_cast<char>('a' + i % 26));

  SECTION("close_notify then FIN: the whole body, re-framed as chunked, and the client keeps its connection") {
    test::raw_client c(srv.port());
    for (int i = 0; i < 2; ++i) {
      REQUIRE(c.send(test::make_request("GET", "/t/eof?n=" + std::to_string(n))));
      auto r = c.read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->header("Transfer-Encoding") == "chunked");
      CHECK(r->body == expected);
    }
  }
  SECTION("a bare FIN (no close_notify): the client never sees the last chunk, and the connection closes") {
    test::raw_client c(srv.port());
    REQUIRE(c.send(test::make_request("GET", "/t/cut?n=" + std::to_string(n))));
    const std::string raw = c.read_all();
    REQUIRE(raw.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(raw.find("Transfer-Encoding: chunked") != std::string::npos);
    CHECK(raw.size() > n / 2);  // the body was streamed as it came
    CHECK(raw.find("\r\n0\r\n\r\n") == std::string::npos);
  }
  SECTION("HTTP/1.0 clients get the body close-delimited: a clean close after close_notify, a reset after a cut") {
    for (const char* path : {"/t/eof", "/t/cut"}) {
      test::raw_client c(srv.port());
      REQUIRE(c.send(std::string("GET ") + path + "?n=" + std::to_string(n) + " HTTP/1.0\r\n\r\n"));
      std::string raw;
      char buf[16384];
      int last_errno = 0;
      for (;;) {
        const ssize_t k = ::recv(c.fd(), buf, sizeof buf, 0);
        if (k > 0) {
          raw.append(buf, static_cast<std::size_t>(k));
          continue;
        }
        last_errno = k == 0 ? 0 : errno;
        break;
      }
      INFO(path << ": errno " << last_errno << ", " << raw.size() << " bytes");
      REQUIRE(raw.rfind("HTTP/1.0 200", 0) == 0);
      CHECK(raw.find("Transfer-Encoding") == std::string::npos);
      const auto body_at = raw.find("\r\n\r\n");
      REQUIRE(body_at != std::string::npos);
      if (std::string_view(path) == "/t/eof") {
        CHECK(last_errno == 0);  // a FIN: the body is whole
        CHECK(raw.substr(body_at + 4) == expected);
      } else {
        CHECK(last_errno == ECONNRESET);  // not a FIN: the client knows it was cut
      }
    }
  }
  CHECK(backend.requests.load() >= 1);
}

TEST_CASE("https upstream: a WebSocket upgrade is tunnelled to the TLS backend both ways, and a half close passes",
          "[integration][proxy][tls]") {
  verified_upstream u;
  auto& srv = *u.srv;
  test::raw_client c(srv.port());
  REQUIRE(c.send("GET /t/ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  const std::string head = read_until(c.fd(), "\r\n\r\n", 5000ms);
  REQUIRE(head.substr(0, 12) == "HTTP/1.1 101");
  for (int i = 0; i < 200; ++i) {
    const std::string msg = "message " + std::to_string(i) + ";";
    REQUIRE(c.send(msg));
    CHECK(read_until(c.fd(), msg, 5000ms) == msg);
  }
  // A 1 MiB burst: the tunnel's fixed buffers carry it through TLS.
  const std::string burst(1u << 20, 'w');
  std::thread writer([&] { c.send(burst); });
  std::string echoed;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (echoed.size() < burst.size() && std::chrono::steady_clock::now() < until)
    echoed += read_until(c.fd(), std::string(1, '\n'), 200ms);  // no '\n' comes: reads what arrives
  writer.join();
  CHECK(echoed.size() == burst.size());
  // The client's FIN reaches the backend (a TCP FIN under TLS), which ends;
  // its end comes back as the tunnel's end.
  ::shutdown(c.fd(), SHUT_WR);
  CHECK(c.wait_closed());
}

TEST_CASE("https upstream: host upstream sends the backend's authority as Host, SNI is the backend's name either way",
          "[integration][proxy][tls]") {
  verified_upstream u([](core::config& cfg) { cfg.routes.front().upstream_host = true; });
  auto& backend = u.backend;
  auto& srv = *u.srv;
  auto r = get(srv.port(), "/t/x");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "host=localhost:" + std::to_string(backend.port()) + " sni=localhost");
}

TEST_CASE("https upstream: active health checks speak TLS, verify the certificate and resume sessions",
          "[integration][proxy][tls]") {
  test::tls_material tls;
  test::tls_backend good(tls.cert, tls.key);
  test::tls_backend wrong(tls.wrong_cert, tls.wrong_key);
  core::config cfg = tls_config(good.url() + "," + wrong.url());
  cfg.upstream_ca = {tls.ca};
  cfg.health_check = "/healthz";
  cfg.health_interval = 50ms;
  cfg.health_timeout = 1s;
  test::running_server srv(cfg);
  const auto until = std::chrono::steady_clock::now() + 10s;
  while ((good.requests.load() < 4 || checks_failed(srv.port(), wrong.url()) < 4) &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  CHECK(good.requests.load() >= 4);                      // GET /healthz over TLS
  CHECK(good.resumed.load() >= 3);                       // each check a new connection, resumed
  CHECK(checks_failed(srv.port(), good.url()) == 0);
  CHECK(checks_failed(srv.port(), wrong.url()) >= 4);    // its certificate fails verification
  CHECK(wrong.requests.load() == 0);
}

TEST_CASE("https upstream: the binary refuses an unreadable --upstream-ca (exit 2), warns for --upstream-insecure "
          "and logs a verification failure",
          "[integration][proxy][tls]") {
  test::tls_material tls;
  test::tls_backend backend(tls.cert, tls.key);
  const std::string bin = std::string(GATEWAY_BIN_DIR) + "/gateway";
  {
    test::child_process gw({bin, "--listen", "127.0.0.1:0", "--backend", backend.url(), "--upstream-ca",
                            tls.dir + "/missing.pem"});
    CHECK(gw.wait_exit(10s) == 2);
    CHECK(gw.err().find("--upstream-ca") != std::string::npos);
  }
  {
    test::child_process gw({bin, "--listen", "127.0.0.1:0", "--backend", backend.url(), "--upstream-ca",
                            tls.dir + "/ca.srl"});  // readable, but not PEM
    CHECK(gw.wait_exit(10s) == 2);
    CHECK(gw.err().find("--upstream-ca " + tls.dir + "/ca.srl: no PEM certificate") != std::string::npos);
  }
  {
    test::child_process gw({bin, "--listen", "127.0.0.1:0", "--threads", "1", "--access-log", "off",
                            "--rate-limit", "off", "--route", "/t/=" + backend.url(), "--upstream-insecure"});
    REQUIRE(gw.wait_for_line("listening on", true, 10s));
    CHECK(gw.wait_for_line("WARNING: --upstream-insecure", true, 10s));
  }
  {
    test::child_process gw({bin, "--listen", "127.0.0.1:0", "--threads", "1", "--access-log", "off",
                            "--rate-limit", "off", "--route", "/t/=" + backend.url()});
    const auto listening = gw.wait_for_line("listening on", true, 10s);
    REQUIRE(listening);
    const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
    auto r = get(port, "/t/x");
    REQUIRE(r);
    CHECK(r->status == 502);
    const auto line = gw.wait_for_line("certificate verification failed", true, 10s);
    REQUIRE(line);
    CHECK(line->find("https://localhost port " + std::to_string(backend.port())) != std::string::npos);
    CHECK(line->find("--upstream-ca") != std::string::npos);
  }
}

TEST_CASE("https upstream: an --upstream-ca file with no certificate stops the start and refuses a reload with "
          "only http backends",
          "[integration][proxy][tls]") {
  test::tls_material tls;
  const std::string nocert = tls.dir + "/nocert.pem";
  {
    std::ofstream out(nocert);
    out << "notacert\n";
    REQUIRE(out.good());
  }
  const std::string expect = "--upstream-ca " + nocert + ": no PEM certificate";
  const std::string bin = std::string(GATEWAY_BIN_DIR) + "/gateway";
  {
    test::child_process gw({bin, "--listen", "127.0.0.1:0", "--threads", "1", "--backend", "http://127.0.0.1:9",
                            "--upstream-ca", nocert});
    CHECK(gw.wait_exit(10s) == 2);
    CHECK(gw.err().find(expect) != std::string::npos);
  }
  {
    test::child_process gw({bin, "--check-config", "--backend", "http://127.0.0.1:9", "--upstream-ca", nocert});
    CHECK(gw.wait_exit(10s) == 1);
    CHECK(gw.err().find(expect) != std::string::npos);
  }
  // In a running gateway: a good CA file with an http backend, then a
  // reload naming the bad file is refused.
  core::config cfg = tls_config("http://127.0.0.1:9");
  cfg.upstream_ca = {tls.ca};
  test::running_server srv(cfg);
  core::config next = cfg;
  next.upstream_ca = {nocert};
  std::string message;
  CHECK_FALSE(srv.app()->reload(next, message));
  CHECK(message.find(expect) != std::string::npos);
  CHECK(srv.app()->reload(cfg, message));
}
