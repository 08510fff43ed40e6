// Backend host names resolved with c-ares and followed while the gateway
// runs: a test DNS server on loopback (tests/support/dns_responder.hpp)
// names two echo_backend processes, on 127.0.0.1 and 127.0.0.2 with the same
// port, and changes its answer; the in-process gateway's per-member figures
// say where the requests went.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gateway/app/settings.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/dns_responder.hpp"
#include "tests/support/keepalive_load.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;
constexpr const char* name = "svc.gateway.test";

// Two echo backends on one port: 127.0.0.1 (its answers delayed, so that
// requests are in flight on it when its address leaves) and 127.0.0.2.
struct backend_pair {
  std::unique_ptr<test::child_process> a, b;
  unsigned port = 0;
  backend_pair() {
    const std::string bin = std::string(GATEWAY_BIN_DIR) + "/echo_backend";
    // The kernel picks a port free on 127.0.0.1; another test may hold it on
    // 127.0.0.2 (tests run in parallel): then both start again on a new one.
    std::string last_error;
    for (int attempt = 0; attempt < 20; ++attempt) {
      a = std::make_unique<test::child_process>(
          std::vector<std::string>{bin, "--listen", "127.0.0.1:0", "--delay", "100ms"});
      auto line = a->wait_for_line("listening on", false, 10s);
      REQUIRE(line);
      port = test::port_after_listening_on(*line);
      REQUIRE(port != 0);
      b = std::make_unique<test::child_process>(
          std::vector<std::string>{bin, "--listen", "127.0.0.2:" + std::to_string(port)});
      if (b->wait_for_line("listening on", false, 10s)) return;
      last_error = b->err();
    }
    FAIL("no port was free on both 127.0.0.1 and 127.0.0.2 in 20 attempts; the last one said: " << last_error);
  }
  std::string url() const { return std::string("http://") + name + ":" + std::to_string(port); }
  std::string member(const char* address) const { return url() + " (" + address + ")"; }
};

core::config dns_config(const backend_pair& backends, const test::dns_responder& dns) {
  core::config cfg = test::test_config();
  cfg.backend = backends.url();
  cfg.dns_server = dns.server();
  cfg.dns_min_ttl = 1s;
  cfg.api_keys = {"key-1"};
  cfg.rate_limit_enabled = false;
  cfg.access_log = "off";
  return cfg;
}

// Requests of the member whose URL is `member` (-1: no such member).
long long member_requests(test::running_server& srv, const std::string& member) {
  for (const auto& m : srv.app()->state().members.all())
    if (m->url() == member) return m->requests.load();
  return -1;
}

const std::string get = "GET /api/item HTTP/1.1\r\nHost: t\r\nX-API-Key: key-1\r\n\r\n";

}  // namespace

TEST_CASE("a backend name is resolved at start-up and each of its A records is a group member",
          "[integration][proxy][dns]") {
  backend_pair backends;
  test::dns_responder dns(name, {"127.0.0.1", "127.0.0.2"}, 60);
  test::running_server srv(dns_config(backends, dns));
  CHECK(dns.queries() >= 1);
  for (int i = 0; i < 20; ++i) {
    auto r = test::http_request(srv.port(), get);
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  // Round robin over the two addresses, one pool each.
  CHECK(member_requests(srv, backends.member("127.0.0.1")) >= 5);
  CHECK(member_requests(srv, backends.member("127.0.0.2")) >= 5);
  CHECK(test::counter(srv.port(), "dns_resolutions") >= 1);
  CHECK(test::gauge(srv.port(), "dns_names") == 1);
}

TEST_CASE("a backend name whose address changes is followed without restart, and no request fails",
          "[integration][proxy][dns]") {
  backend_pair backends;
  test::dns_responder dns(name, {"127.0.0.1"}, 1);
  test::running_server srv(dns_config(backends, dns));
  // Sixteen connections, so that both workers usually serve some (a worker
  // no request reaches follows the name at its sweep: the next test).
  test::keepalive_load clients(srv.port(), get, 16, 100000);
  const auto first = backends.member("127.0.0.1"), second = backends.member("127.0.0.2");
  REQUIRE(test::wait_until([&] { return member_requests(srv, first) >= 20; }, 5000ms));
  CHECK(member_requests(srv, second) == -1);

  // The record's TTL is 1 s: the new address takes traffic within TTL + 1 s.
  const auto changed = clock_type::now();
  dns.set({"127.0.0.2"}, 1);
  test::wait_until([&] { return member_requests(srv, second) > 0; }, 5000ms);
  const auto took = clock_type::now() - changed;
  INFO("moved after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  REQUIRE(member_requests(srv, second) > 0);
  CHECK(took <= 2s);
  // The old address's member is gone once its requests in flight finished.
  CHECK(test::wait_until([&] { return member_requests(srv, first) == -1; }, 3000ms));
  const auto before = member_requests(srv, second);
  std::this_thread::sleep_for(300ms);
  CHECK(member_requests(srv, second) > before);
  clients.stop();
  INFO(clients.done() << " requests");
  CHECK(clients.done() > 50);
  CHECK(clients.failed() == 0);  // requests in flight on 127.0.0.1 when it left finished there
  CHECK(test::counter(srv.port(), "dns_changes") >= 1);
  CHECK(test::counter(srv.port(), "dns_failures") == 0);
}

TEST_CASE("every worker drops a name's address that left, with no request after the change",
          "[integration][proxy][dns]") {
  // One request: one worker serves it and the other is never asked; after
  // the change no request comes at all. Both workers hold a member for
  // 127.0.0.1 from start-up, and each must let it go (and take 127.0.0.2)
  // on its own, at its sweep.
  backend_pair backends;
  test::dns_responder dns(name, {"127.0.0.1"}, 1);
  test::running_server srv(dns_config(backends, dns));
  const auto first = backends.member("127.0.0.1"), second = backends.member("127.0.0.2");
  auto r = test::http_request(srv.port(), get);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(member_requests(srv, first) == 1);
  dns.set({"127.0.0.2"}, 1);
  // The record's TTL is 1 s: re-resolved within about that, then followed
  // by each worker within a sweep (250 ms here).
  const auto changed = clock_type::now();
  const bool followed =
      test::wait_until([&] { return member_requests(srv, first) == -1 && member_requests(srv, second) == 0; }, 5000ms);
  INFO("dns_changes " << test::counter(srv.port(), "dns_changes") << ", first " << member_requests(srv, first)
                      << ", second " << member_requests(srv, second) << ", after "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - changed).count()
                      << " ms");
  CHECK(followed);
  r = test::http_request(srv.port(), get);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(member_requests(srv, second) == 1);
}

TEST_CASE("with active health checks a new address of a name is checked and marked down with no request arriving",
          "[integration][proxy][dns]") {
  // The members follow the name on the checks' timer, not only before a
  // request: a worker no request reaches still starts the checks of the
  // members it is assigned, which no other worker checks.
  backend_pair backends;
  test::dns_responder dns(name, {"127.0.0.2"}, 1);
  auto cfg = dns_config(backends, dns);
  cfg.health_check = "/healthz";
  cfg.health_interval = 100ms;
  cfg.health_timeout = 200ms;
  cfg.health_unhealthy = 2;
  test::running_server srv(cfg);
  auto member_of = [&](const std::string& url) -> std::shared_ptr<proxy::member_state> {
    for (const auto& m : srv.app()->state().members.all())
      if (m->url() == url) return m;
    return nullptr;
  };
  REQUIRE(member_of(backends.member("127.0.0.2")) != nullptr);
  // 127.0.0.3 on the backends' port: nothing listens, each check is refused.
  dns.set({"127.0.0.2", "127.0.0.3"}, 1);
  const auto dead = backends.member("127.0.0.3");
  const bool marked = test::wait_until(
      [&] {
        auto m = member_of(dead);
        return m != nullptr && m->down();
      },
      5000ms);
  auto m = member_of(dead);
  INFO("member " << (m ? "listed" : "not listed") << ", checks failed " << (m ? m->checks_failed.load() : -1));
  CHECK(marked);
  auto live = member_of(backends.member("127.0.0.2"));
  REQUIRE(live != nullptr);
  CHECK_FALSE(live->down());
}

TEST_CASE("a named member whose address stays keeps its checker's count and its state across re-resolutions",
          "[integration][proxy][dns]") {
  // Every re-resolution (TTL 1 s) returns another set than the last one, and
  // 127.0.0.3 (nothing listens: each check is refused) is in every set. Five
  // failed checks 400 ms apart mark it down: 2 s without a restart of its
  // count, longer than the time between two changes.
  backend_pair backends;
  test::dns_responder dns(name, {"127.0.0.2", "127.0.0.3"}, 1);
  auto cfg = dns_config(backends, dns);
  cfg.health_check = "/healthz";
  cfg.health_interval = 400ms;
  cfg.health_timeout = 300ms;
  cfg.health_unhealthy = 5;
  test::running_server srv(cfg);
  auto member_of = [&](const std::string& url) -> std::shared_ptr<proxy::member_state> {
    for (const auto& m : srv.app()->state().members.all())
      if (m->url() == url) return m;
    return nullptr;
  };
  const auto dead = backends.member("127.0.0.3");
  const auto first = member_of(dead);
  REQUIRE(first != nullptr);
  // After each query, the other answer: 127.0.0.1 in front (the members'
  // order shifts) or not.
  std::int64_t seen = dns.queries();
  int changes = 0;
  bool with_one = false;
  const auto flip_after_query = [&] {
    if (dns.queries() == seen) return;
    seen = dns.queries();
    with_one = !with_one;
    if (with_one) dns.set({"127.0.0.1", "127.0.0.2", "127.0.0.3"}, 1);
    else dns.set({"127.0.0.2", "127.0.0.3"}, 1);
    ++changes;
  };
  const auto until = clock_type::now() + 10s;
  while (clock_type::now() < until && !first->down()) {
    flip_after_query();
    std::this_thread::sleep_for(20ms);
  }
  INFO("changes " << changes << ", checks failed " << first->checks_failed.load() << ", dns_changes "
                  << test::counter(srv.port(), "dns_changes"));
  CHECK(first->down());
  CHECK(changes >= 1);
  // Two more changes: still down, and the same member (its state and counts).
  const int marked_at = changes;
  const auto more = clock_type::now() + 6s;
  while (clock_type::now() < more && changes < marked_at + 2) {
    flip_after_query();
    std::this_thread::sleep_for(20ms);
  }
  CHECK(changes >= marked_at + 2);
  std::this_thread::sleep_for(600ms);  // the members have followed the last change
  CHECK(member_of(dead) == first);
  CHECK(first->down());
  auto live = member_of(backends.member("127.0.0.2"));
  REQUIRE(live != nullptr);
  CHECK_FALSE(live->down());
}

TEST_CASE("a DNS server gone keeps the last good addresses and counts the failures",
          "[integration][proxy][dns]") {
  backend_pair backends;
  test::dns_responder dns(name, {"127.0.0.2"}, 1);
  test::running_server srv(dns_config(backends, dns));
  dns.stop();
  CHECK(test::wait_until([&] { return test::counter(srv.port(), "dns_failures") >= 2; }, 10000ms));
  for (int i = 0; i < 10; ++i) {
    auto r = test::http_request(srv.port(), get);
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  CHECK(member_requests(srv, backends.member("127.0.0.2")) == 10);
  CHECK(test::counter(srv.port(), "dns_changes") == 0);
}

TEST_CASE("a backend name that cannot be resolved at start-up is refused, naming the backend",
          "[integration][proxy][dns]") {
  test::dns_responder dns(name, {"127.0.0.1"}, 60);
  core::config cfg = test::test_config();
  cfg.dns_server = dns.server();
  cfg.backend = "http://nowhere.gateway.test:3000";
  try {
    app::instance gw(cfg);
    FAIL("the gateway started");
  } catch (const app::config_error& e) {  // run() exits 2 for it
    const std::string what = e.what();
    CHECK(what.find("--backend http://nowhere.gateway.test:3000") != std::string::npos);
    CHECK(what.find("cannot resolve 'nowhere.gateway.test'") != std::string::npos);
  }
  // The same for a route's backend.
  cfg.backend.clear();
  core::route_config r;
  r.prefix = "/svc/";
  r.backend = "http://127.0.0.1:3000,http://nowhere.gateway.test:3000";
  cfg.routes.push_back(r);
  try {
    app::instance gw(cfg);
    FAIL("the gateway started");
  } catch (const app::config_error& e) {
    CHECK(std::string(e.what()).find("route /svc/") != std::string::npos);
  }
}

TEST_CASE("a reload resolves the names it brings, and refuses one that cannot be resolved",
          "[integration][proxy][dns]") {
  backend_pair backends;
  test::dns_responder dns(name, {"127.0.0.2"}, 60);
  core::config cfg = dns_config(backends, dns);
  cfg.backend = "http://127.0.0.1:" + std::to_string(backends.port);
  test::running_server srv(cfg);
  CHECK(test::gauge(srv.port(), "dns_names") == 0);

  core::config next = cfg;
  core::route_config r;
  r.prefix = "/svc/";
  r.backend = backends.url();
  next.routes.push_back(r);
  std::string message;
  REQUIRE(srv.app()->reload(next, message));
  auto answer = test::http_request(srv.port(), "GET /svc/item HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(answer);
  CHECK(answer->status == 200);
  CHECK(member_requests(srv, backends.member("127.0.0.2")) == 1);
  CHECK(test::gauge(srv.port(), "dns_names") == 1);

  next.routes.back().backend = "http://nowhere.gateway.test:" + std::to_string(backends.port);
  CHECK_FALSE(srv.app()->reload(next, message));
  CHECK(message.find("route /svc/") != std::string::npos);
  CHECK(message.find("cannot resolve 'nowhere.gateway.test'") != std::string::npos);
  answer = test::http_request(srv.port(), "GET /svc/item HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(answer);
  CHECK(answer->status == 200);  // the previous configuration stays
  CHECK(member_requests(srv, backends.member("127.0.0.2")) == 2);
}
