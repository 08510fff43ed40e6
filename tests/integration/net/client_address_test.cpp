// The client's address behind a load balancer, over real loopback sockets:
// the PROXY protocol (--proxy-protocol) and X-Forwarded-For from trusted
// proxies (--trusted-proxy). What the rate limit keys on, what /logs shows
// and what the backend's X-Forwarded-For gets are all that address.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "gateway/json/reader.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::string get(std::string_view path, std::string_view extra = {}) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

std::string v1(std::string_view family, std::string_view src, std::uint16_t port) {
  const std::string_view dst = family == "TCP6" ? "2001:db8::1" : "10.0.0.1";
  return "PROXY " + std::string(family) + " " + std::string(src) + " " + std::string(dst) + " " +
         std::to_string(port) + " 8080\r\n";
}

// A v2 PROXY header over TCP/IPv4 from a.b.c.d:port.
std::string v2_inet(std::initializer_list<int> a, std::uint16_t port) {
  std::string s("\r\n\r\n\0\r\nQUIT\n", 12);
  s += "\x21\x11";
  s.push_back(0);
  s.push_back(12);
  for (int x : a) s.push_back(static_cast<char>(x));
  s += std::string("\x0a\x00\x00\x01", 4);
  s.push_back(static_cast<char>(port >> 8));
  s.push_back(static_cast<char>(port & 0xff));
  s += "\x1f\x90";
  return s;
}

// A v2 LOCAL header (a balancer's own health check).
std::string v2_local() {
  std::string s("\r\n\r\n\0\r\nQUIT\n", 12);
  s += std::string("\x20\x00\x00\x00", 4);
  return s;
}

// One request on a fresh connection that starts with `preface` (a PROXY header).
std::optional<test::http_response> ask(std::uint16_t port, std::string_view preface, std::string_view request,
                                       const char* source_ip = nullptr) {
  test::raw_client c(port, 5000ms, source_ip);
  if (!c.send(std::string(preface) + std::string(request))) return std::nullopt;
  return c.read_response();
}

std::uint16_t local_port(int fd) {
  sockaddr_in local{};
  socklen_t len = sizeof local;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0);
  return ntohs(local.sin_port);
}

// The client_ip of every /logs entry for `path`, oldest first.
std::vector<std::string> logged_clients(const test::http_response& logs, std::string_view path) {
  auto doc = json::parse(logs.body);
  REQUIRE(doc);
  REQUIRE(doc.value().is_array());
  std::vector<std::string> out;
  for (const auto& e : doc.value().items())
    if (e.find("path")->as_string() == path) out.emplace_back(e.find("client_ip")->as_string());
  return out;
}

// A /metrics series ("counters" or "gauges"), read over a connection that
// starts with `preface` (test::counter's plain connection would be refused).
long long metric(std::uint16_t port, std::string_view preface, std::string_view kind, std::string_view name) {
  auto r = ask(port, preface, get("/metrics"));
  if (!r || r->status != 200) return -1;
  auto doc = json::parse(r->body);
  if (!doc) return -1;
  const auto* set = doc.value().find(kind);
  const auto* v = set ? set->find(name) : nullptr;
  return v && v->as_int64() ? *v->as_int64() : -1;
}

long long metrics_counter(std::uint16_t port, std::string_view preface, std::string_view name) {
  return metric(port, preface, "counters", name);
}

core::config proxy_protocol_config() {
  core::config c = test::test_config();
  c.proxy_protocol = true;
  c.api_keys = {"key-one"};
  c.rate_limit = 3;
  c.rate_limit_window = 60s;
  c.rate_limit_exempt = {"/metrics", "/logs"};
  return c;
}

// The trusted-proxy tests' gateway: `backend`, one API key ("key-one"), a
// rate limit of 2 a minute, and 127.0.0.0/30 (127.0.0.0 .. 127.0.0.3) as
// trusted proxies.
core::config trusted_proxy_config(test::recording_backend& backend) {
  core::config cfg = test::test_config();
  cfg.backend = backend.url();
  cfg.api_keys = {"key-one"};
  cfg.rate_limit = 2;
  cfg.rate_limit_window = 60s;
  std::string_view err;
  cfg.trusted_proxies.add(*core::parse_cidr("127.0.0.0/30", err));
  return cfg;
}

}  // namespace

TEST_CASE("PROXY protocol: clients behind one balancer connection get their own rate-limit budgets and /logs "
          "shows the PROXY address",
          "[integration][net]") {
  test::running_server srv(proxy_protocol_config());
  const std::uint16_t port = srv.port();
  // Every connection comes from the same TCP peer (127.0.0.1), as from a balancer.
  for (int i = 0; i < 3; ++i) {
    auto r = ask(port, v1("TCP4", "198.51.100.1", static_cast<std::uint16_t>(40001 + i)), get("/health"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("RateLimit-Remaining") == std::to_string(2 - i));
  }
  // The same client through a v2 header shares its budget: it is the
  // address that counts, not the connection or the header's version.
  auto fourth = ask(port, v2_inet({198, 51, 100, 1}, 40100), get("/health"));
  REQUIRE(fourth);
  CHECK(fourth->status == 429);
  // Another client from the same peer has its own.
  auto other = ask(port, v2_inet({198, 51, 100, 2}, 40200), get("/health"));
  REQUIRE(other);
  CHECK(other->status == 200);
  CHECK(other->header("RateLimit-Remaining") == "2");
  auto six = ask(port, v1("TCP6", "2001:db8::7", 40300), get("/health"));
  REQUIRE(six);
  CHECK(six->status == 200);
  CHECK(six->header("RateLimit-Remaining") == "2");

  // Keep-alive: every request on a PROXY connection is that client's.
  test::raw_client keep(port, 5000ms);
  REQUIRE(keep.send(v1("TCP4", "198.51.100.3", 40400) + get("/health")));
  auto k1 = keep.read_response();
  REQUIRE(k1);
  CHECK(k1->header("RateLimit-Remaining") == "2");
  REQUIRE(keep.send(get("/health")));
  auto k2 = keep.read_response();
  REQUIRE(k2);
  CHECK(k2->header("RateLimit-Remaining") == "1");

  auto logs = ask(port, v1("TCP4", "198.51.100.9", 40900), get("/logs", "X-API-Key: key-one\r\n"));
  REQUIRE(logs);
  REQUIRE(logs->status == 200);
  CHECK(logged_clients(*logs, "/health") ==
        std::vector<std::string>{"198.51.100.1:40001", "198.51.100.1:40002", "198.51.100.1:40003",
                                 "198.51.100.1:40100", "198.51.100.2:40200", "[2001:db8::7]:40300",
                                 "198.51.100.3:40400", "198.51.100.3:40400"});
}

TEST_CASE("PROXY protocol: a keep-alive connection parked after an idle second keeps its PROXY client",
          "[integration][net]") {
  test::running_server srv(proxy_protocol_config());
  const std::uint16_t port = srv.port();
  test::raw_client keep(port, 5000ms);
  REQUIRE(keep.send(v1("TCP4", "198.51.100.4", 40500) + get("/health")));
  auto k1 = keep.read_response();
  REQUIRE(k1);
  CHECK(k1->header("RateLimit-Remaining") == "2");
  // Idle for a second, the session ends and the descriptor is parked
  // (only the two accept loops are coroutines then). The header is not
  // read again: the next bytes are a request, and the client is the same.
  REQUIRE(test::wait_until([&] { return srv.server().live().coroutines == 2; }, 5000ms));
  REQUIRE(keep.send(get("/health")));
  auto k2 = keep.read_response();
  REQUIRE(k2);
  CHECK(k2->status == 200);
  CHECK(k2->header("RateLimit-Remaining") == "1");
  // A client address too long for the parked record's own bytes (kept
  // apart while parked) comes back the same.
  test::raw_client six(port, 5000ms);
  REQUIRE(six.send(v1("TCP6", "2001:db8:1234:5678::abcd", 40600) + get("/health")));
  REQUIRE(six.read_response());
  REQUIRE(test::wait_until([&] { return srv.server().live().coroutines == 2; }, 5000ms));
  REQUIRE(six.send(get("/health")));
  auto s2 = six.read_response();
  REQUIRE(s2);
  CHECK(s2->status == 200);
  CHECK(s2->header("RateLimit-Remaining") == "1");
  auto logs = ask(port, v1("TCP4", "198.51.100.9", 40900), get("/logs", "X-API-Key: key-one\r\n"));
  REQUIRE(logs);
  REQUIRE(logs->status == 200);
  CHECK(logged_clients(*logs, "/health") ==
        std::vector<std::string>{"198.51.100.4:40500", "198.51.100.4:40500", "[2001:db8:1234:5678::abcd]:40600",
                                 "[2001:db8:1234:5678::abcd]:40600"});
}

TEST_CASE("PROXY protocol: LOCAL and UNKNOWN keep the socket's peer as the client", "[integration][net]") {
  test::running_server srv(proxy_protocol_config());
  test::raw_client local(srv.port(), 5000ms, "127.0.0.5");
  REQUIRE(local.send(v2_local() + get("/health")));
  auto r = local.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  test::raw_client unknown(srv.port(), 5000ms, "127.0.0.6");
  REQUIRE(unknown.send("PROXY UNKNOWN\r\n" + get("/health")));
  auto u = unknown.read_response();
  REQUIRE(u);
  CHECK(u->status == 200);
  auto logs = ask(srv.port(), v2_local(), get("/logs", "X-API-Key: key-one\r\n"));
  REQUIRE(logs);
  CHECK(logged_clients(*logs, "/health") ==
        std::vector<std::string>{"127.0.0.5:" + std::to_string(local_port(local.fd())),
                                 "127.0.0.6:" + std::to_string(local_port(unknown.fd()))});
}

TEST_CASE("PROXY protocol: a connection without a valid header is closed unanswered and counted in "
          "proxy_protocol_rejected",
          "[integration][net]") {
  core::config cfg = proxy_protocol_config();
  cfg.header_timeout = 300ms;
  test::running_server srv(cfg);
  const std::uint16_t port = srv.port();
  const std::string local = v2_local();
  CHECK(metrics_counter(port, local, "proxy_protocol_rejected") == 0);

  // Plain HTTP where a PROXY header must be: closed at once, no answer.
  {
    test::raw_client c(port, 5000ms);
    REQUIRE(c.send(get("/health")));
    CHECK(c.read_all().empty());
  }
  CHECK(metrics_counter(port, local, "proxy_protocol_rejected") == 1);
  // Malformed headers of either version.
  for (std::string bad : {std::string("PROXY TCP4 198.51.100.1 10.0.0.1 99999 80\r\n"),
                          std::string("PROXY TCP4 198.51.100.1 10.0.0.1 1 80\n"),
                          std::string("\r\n\r\n\0\r\nQUIT\n\x21\x31\x00\x00", 16)}) {
    test::raw_client c(port, 5000ms);
    REQUIRE(c.send(bad + get("/health")));
    CHECK(c.read_all().empty());
  }
  CHECK(metrics_counter(port, local, "proxy_protocol_rejected") == 4);
  // A header that stalls is cut by --header-timeout.
  {
    test::raw_client c(port, 5000ms);
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(c.send("PROXY TCP4 198.51.100.1"));
    CHECK(c.wait_closed());
    CHECK(std::chrono::steady_clock::now() - start < 4s);
  }
  CHECK(metrics_counter(port, local, "proxy_protocol_rejected") == 5);
  // A connection that closes before sending anything refused nothing.
  { test::raw_client c(port, 5000ms); }
  // Its close is seen once only the connection asking is left.
  CHECK(test::wait_until([&] { return metric(port, local, "gauges", "connections") == 1; }, 5s));
  auto prom = ask(port, local, get("/metrics?format=prometheus"));
  REQUIRE(prom);
  CHECK(prom->body.find("# TYPE gateway_proxy_protocol_rejected_total counter\n") != std::string::npos);
  CHECK(prom->body.find("\ngateway_proxy_protocol_rejected_total 5\n") != std::string::npos);
}

TEST_CASE("trusted proxy: X-Forwarded-For names the client only when the peer is trusted, that client is rate "
          "limited, logged and appended to X-Forwarded-For",
          "[integration][net]") {
  test::recording_backend backend;
  core::config cfg = trusted_proxy_config(backend);
  cfg.rate_limit_exempt = {"/logs"};
  test::running_server srv(cfg);
  const std::uint16_t port = srv.port();
  const std::string key = "X-API-Key: key-one\r\n";

  // From a trusted peer: the right-most untrusted hop is the client.
  for (int i = 0; i < 2; ++i) {
    auto r = ask(port, {}, get("/api/a", key + "X-Forwarded-For: 198.51.100.9, 203.0.113.5, 127.0.0.3\r\n"),
                 "127.0.0.2");
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  auto third = ask(port, {}, get("/api/a", key + "X-Forwarded-For: 203.0.113.5\r\n"), "127.0.0.2");
  REQUIRE(third);
  CHECK(third->status == 429);
  auto another = ask(port, {}, get("/api/a", key + "X-Forwarded-For: 203.0.113.6\r\n"), "127.0.0.2");
  REQUIRE(another);
  CHECK(another->status == 200);
  // From an untrusted peer the header names nobody: the peer has its own
  // budget although 203.0.113.5's is spent.
  test::raw_client untrusted(port, 5000ms, "127.0.0.9");
  REQUIRE(untrusted.send(get("/api/b", key + "X-Forwarded-For: 203.0.113.5\r\n")));
  auto u = untrusted.read_response();
  REQUIRE(u);
  CHECK(u->status == 200);

  auto got = backend.requests();
  REQUIRE(got.size() == 4);
  CHECK(got[0].head.find("X-Forwarded-For: 198.51.100.9, 203.0.113.5, 127.0.0.3, 203.0.113.5\r\n") !=
        std::string::npos);
  CHECK(got[2].head.find("X-Forwarded-For: 203.0.113.6, 203.0.113.6\r\n") != std::string::npos);
  CHECK(got[3].head.find("X-Forwarded-For: 203.0.113.5, 127.0.0.9\r\n") != std::string::npos);

  auto logs = ask(port, {}, get("/logs", key), "127.0.0.2");
  REQUIRE(logs);
  CHECK(logged_clients(*logs, "/api/a") ==
        std::vector<std::string>{"203.0.113.5", "203.0.113.5", "203.0.113.5", "203.0.113.6"});
  CHECK(logged_clients(*logs, "/api/b") ==
        std::vector<std::string>{"127.0.0.9:" + std::to_string(local_port(untrusted.fd()))});
}

TEST_CASE("trusted proxy: clients that alternate on one keep-alive connection keep their own rate-limit budgets",
          "[integration][net]") {
  test::recording_backend backend;
  core::config cfg = trusted_proxy_config(backend);
  test::running_server srv(cfg);
  test::raw_client c(srv.port(), 5000ms, "127.0.0.2");
  const auto status = [&](const char* client) {
    REQUIRE(c.send(get("/api/a", "X-API-Key: key-one\r\nX-Forwarded-For: " + std::string(client) + "\r\n")));
    auto r = c.read_response();
    REQUIRE(r);
    return r->status;
  };
  // The two first addresses end in the same eight bytes and have the same
  // length; the third is an IPv6 address. Each has a budget of two.
  const char* clients[] = {"10.0.113.5", "20.0.113.5", "2001:db8::7"};
  for (int round = 0; round < 2; ++round)
    for (const char* client : clients) {
      INFO("round " << round << " client " << client);
      CHECK(status(client) == 200);
    }
  for (const char* client : clients) {
    INFO("client " << client);
    CHECK(status(client) == 429);
  }
  CHECK(status("30.0.113.5") == 200);
}

TEST_CASE("trusted proxy behind the PROXY protocol: the PROXY address is the peer that is trusted or not",
          "[integration][net]") {
  core::config cfg = proxy_protocol_config();
  std::string_view err;
  cfg.trusted_proxies.add(*core::parse_cidr("192.0.2.0/24", err));
  test::running_server srv(cfg);
  const std::string xff = "X-Forwarded-For: 203.0.113.77\r\n";
  // The TCP peer (127.0.0.1) is not trusted, but the PROXY address is.
  auto via_trusted = ask(srv.port(), v1("TCP4", "192.0.2.10", 41000), get("/health", xff));
  REQUIRE(via_trusted);
  CHECK(via_trusted->status == 200);
  auto via_other = ask(srv.port(), v1("TCP4", "198.51.100.10", 41001), get("/health", xff));
  REQUIRE(via_other);
  CHECK(via_other->status == 200);
  auto logs = ask(srv.port(), v2_local(), get("/logs", "X-API-Key: key-one\r\n"));
  REQUIRE(logs);
  CHECK(logged_clients(*logs, "/health") == std::vector<std::string>{"203.0.113.77", "198.51.100.10:41001"});
}

TEST_CASE("trusted proxy ranges change on a reload, --proxy-protocol needs a restart", "[integration][net]") {
  core::config cfg = test::test_config();
  cfg.api_keys = {"key-one"};
  cfg.rate_limit_enabled = false;
  test::running_server srv(cfg);
  const std::string xff = "X-Forwarded-For: 203.0.113.50\r\n";
  REQUIRE(ask(srv.port(), {}, get("/health", xff), "127.0.0.2"));

  core::config next = srv.app()->cfg();
  std::string_view err;
  next.trusted_proxies.add(*core::parse_cidr("127.0.0.2", err));
  std::string message;
  REQUIRE(srv.app()->reload(next, message));
  REQUIRE(ask(srv.port(), {}, get("/health", xff), "127.0.0.2"));

  auto logs = ask(srv.port(), {}, get("/logs", "X-API-Key: key-one\r\n"));
  REQUIRE(logs);
  const auto clients = logged_clients(*logs, "/health");
  REQUIRE(clients.size() == 2);
  CHECK(clients[0].rfind("127.0.0.2:", 0) == 0);  // before: the peer, with its port
  CHECK(clients[1] == "203.0.113.50");           // after: the client it names

  core::config pp = next;
  pp.proxy_protocol = true;
  CHECK_FALSE(srv.app()->reload(pp, message));
  CHECK(message.find("proxy_protocol") != std::string::npos);
}
