// Tested as deployed (issue 18): a real redis-server, three gateway
// instances with --proxy-protocol and --rate-limit-store, and HAProxy in TCP
// mode with send-proxy-v2 in front of them, all on loopback and all started
// and stopped (by PID) here. Several client addresses send 300 requests
// each through HAProxy: exactly 100 pass per client in the window, whatever
// instance each request reaches; one instance is stopped (SIGTERM, graceful
// drain) mid-run and no request is lost.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child_process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::size_t count_of(const std::string& text, std::string_view needle) {
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("three instances behind HAProxy (send-proxy-v2) sharing Redis: exactly 100 of 300 pass per client, and "
          "stopping one instance mid-run loses no request",
          "[cluster]") {
  const std::string haproxy = test::find_haproxy();
  GATEWAY_REQUIRE_AVAILABLE(!haproxy.empty(), "haproxy (Debian package haproxy) is not installed");
  GATEWAY_REQUIRE_AVAILABLE(test::redis_server::available(), "redis-server (Debian package redis-server) is missing");
  test::redis_server redis;
  REQUIRE(redis.start());

  constexpr int instances = 3;
  std::array<std::unique_ptr<test::child_process>, instances> gw;
  std::array<std::uint16_t, instances> ports{};
  for (int i = 0; i < instances; ++i) {
    // The timeout is generous: this test is about the shared count, the
    // fallback has its own tests (rate_limit_store_test.cpp).
    gw[i] = std::make_unique<test::child_process>(std::vector<std::string>{
        std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--threads", "1", "--proxy-protocol",
        "--rate-limit", "100/min", "--rate-limit-store", redis.url(), "--rate-limit-store-timeout", "2s",
        "--access-log", "text", "--drain-timeout", "10s"});
    const auto line = gw[i]->wait_for_line("listening on", true, 10s);
    REQUIRE(line);
    ports[i] = static_cast<std::uint16_t>(test::port_after_listening_on(*line));
    REQUIRE(ports[i] != 0);
  }
  for (auto& g : gw) REQUIRE(g->wait_for_line("reachable: every instance", true, 10s));

  const std::uint16_t lb_port = test::free_loopback_port();
  REQUIRE(lb_port != 0);
  const std::string dir = std::filesystem::temp_directory_path() / ("gateway-cluster-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cfg_path = dir + "/haproxy.cfg";
  {
    std::ofstream cfg(cfg_path);
    // redispatch 1 + retries: a connection an instance refuses (it closed
    // its listener to drain) goes to another one, as it would in production.
    cfg << "global\n  maxconn 1024\n"
           "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n"
           "  retries 3\n  option redispatch 1\n"
           "frontend clients\n  bind 127.0.0.1:"
        << lb_port << "\n  default_backend gateways\n"
        << "backend gateways\n  balance roundrobin\n";
    for (int i = 0; i < instances; ++i)
      cfg << "  server gw" << i << " 127.0.0.1:" << ports[i] << " send-proxy-v2 check check-send-proxy inter 100ms\n";
  }
  test::child_process lb({haproxy, "-db", "-f", cfg_path});
  const bool up = test::wait_until([&] { return test::accepts_connections(lb_port); }, 10s);
  INFO("haproxy stderr: " << lb.err());
  REQUIRE(up);

  // Four clients, 300 requests each, one connection per request (so
  // HAProxy spreads them over the instances).
  constexpr int clients = 4;
  constexpr int per_client = 300;
  std::array<std::atomic<int>, clients> passed{}, refused{}, lost{};
  std::atomic<int> answered{0};
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      const std::string ip = "127.0.0." + std::to_string(41 + c);
      const auto end = std::chrono::steady_clock::now() + 50s;
      for (int i = 0; i < per_client && std::chrono::steady_clock::now() < end; ++i) {
        try {
          test::raw_client conn(lb_port, 10000ms, ip.c_str());
          auto r = conn.send("GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n") ? conn.read_response()
                                                                                              : std::nullopt;
          if (!r) ++lost[c];
          else if (r->status == 200) ++passed[c];
          else if (r->status == 429) ++refused[c];
          else ++lost[c];
        } catch (const std::exception&) {
          ++lost[c];
        }
        ++answered;
      }
    });
  }
  // Mid-run: the second instance drains and exits.
  CHECK(test::wait_until([&] { return answered >= clients * per_client / 3; }, 50s));
  gw[1]->signal(SIGTERM);
  CHECK(gw[1]->wait_exit(20s) == 0);
  for (auto& t : threads) t.join();
  const auto took = std::chrono::steady_clock::now() - started;
  // The promise is per window (one minute here): the run must fit in one.
  REQUIRE(took < 55s);

  for (int c = 0; c < clients; ++c) {
    INFO("client 127.0.0." << 41 + c);
    CHECK(lost[c] == 0);
    CHECK(passed[c] == 100);
    CHECK(refused[c] == per_client - 100);
  }
  // Every instance answered some of them (the stopped one before it stopped).
  for (int i = 0; i < instances; ++i) {
    if (i != 1) {
      gw[i]->signal(SIGTERM);
      CHECK(gw[i]->wait_exit(20s) == 0);
    }
    INFO("instance " << i);
    CHECK(count_of(gw[i]->out(), " /health ") > 0);
    CHECK(gw[i]->err().find("unreachable") == std::string::npos);
  }
  lb.signal(SIGTERM);
  lb.wait_exit(10s);
  redis.kill();
  std::filesystem::remove_all(dir);
}
