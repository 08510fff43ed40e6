// The gateway behind a real HAProxy in TCP mode with send-proxy-v2, as it
// is deployed behind an L4 balancer: the gateway binary and haproxy run as
// child processes on loopback; clients connect to haproxy from distinct
// 127.0.0.x addresses, and the gateway must see each as its own client.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gateway/json/reader.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::string get(std::string_view path, std::string_view extra = {}) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

std::uint16_t local_port(int fd) {
  sockaddr_in local{};
  socklen_t len = sizeof local;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0);
  return ntohs(local.sin_port);
}

}  // namespace

TEST_CASE("behind HAProxy with send-proxy-v2, each client address has its own rate-limit budget and is what "
          "/logs and the access log show",
          "[integration][net]") {
  const std::string haproxy = test::find_haproxy();
  GATEWAY_REQUIRE_AVAILABLE(!haproxy.empty(), "haproxy (Debian package haproxy) is not installed");

  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--threads", "2",
                          "--proxy-protocol", "--rate-limit", "3/min", "--rate-limit-exempt", "/logs",
                          "--rate-limit-exempt", "/metrics", "--api-key", "key-one", "--access-log", "text"});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  REQUIRE(listening);
  const auto gw_port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  REQUIRE(gw_port != 0);

  const std::uint16_t lb_port = test::free_loopback_port();
  REQUIRE(lb_port != 0);
  const std::string dir = std::filesystem::temp_directory_path() / ("gateway-haproxy-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cfg_path = dir + "/haproxy.cfg";
  std::ofstream(cfg_path) << "global\n"
                             "  maxconn 256\n"
                             "defaults\n"
                             "  mode tcp\n"
                             "  timeout connect 2s\n"
                             "  timeout client 10s\n"
                             "  timeout server 10s\n"
                             "frontend clients\n"
                             "  bind 127.0.0.1:"
                          << lb_port
                          << "\n"
                             "  default_backend gateways\n"
                             "backend gateways\n"
                             "  server gw1 127.0.0.1:"
                          << gw_port << " send-proxy-v2 check check-send-proxy inter 100ms\n";
  test::child_process lb({haproxy, "-db", "-f", cfg_path});
  const bool up = test::wait_until([&] { return test::accepts_connections(lb_port); }, 10s);
  INFO("haproxy stderr: " << lb.err());
  REQUIRE(up);

  // 127.0.0.11 spends its budget (3/min); 127.0.0.12, through the same
  // haproxy and so the same TCP peer of the gateway, still has its own.
  std::vector<std::string> expected;
  for (int i = 0; i < 4; ++i) {
    test::raw_client c(lb_port, 5000ms, "127.0.0.11");
    REQUIRE(c.send(get("/health")));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == (i < 3 ? 200 : 429));
    expected.push_back("127.0.0.11:" + std::to_string(local_port(c.fd())));
  }
  {
    test::raw_client c(lb_port, 5000ms, "127.0.0.12");
    REQUIRE(c.send(get("/health")));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("RateLimit-Remaining") == "2");
    expected.push_back("127.0.0.12:" + std::to_string(local_port(c.fd())));
  }

  test::raw_client admin(lb_port, 5000ms, "127.0.0.13");
  REQUIRE(admin.send(get("/logs", "X-API-Key: key-one\r\n")));
  auto logs = admin.read_response();
  REQUIRE(logs);
  REQUIRE(logs->status == 200);
  auto doc = json::parse(logs->body);
  REQUIRE(doc);
  std::vector<std::string> logged;
  for (const auto& e : doc.value().items())
    if (e.find("path")->as_string() == "/health") logged.emplace_back(e.find("client_ip")->as_string());
  CHECK(logged == expected);

  // Straight to the gateway, without haproxy's header: refused.
  {
    test::raw_client direct(gw_port, 5000ms);
    REQUIRE(direct.send(get("/health")));
    CHECK(direct.read_all().empty());
  }
  // Only that one: haproxy's health checks (every 100 ms, each a
  // connection with a PROXY header, then a close) are not refusals. The
  // clients made 6 connections through haproxy and 1 directly; wait for a
  // few checks on top.
  auto counter = [&](std::string_view name) -> long long {
    if (!admin.send(get("/metrics"))) return -1;
    auto r = admin.read_response();
    if (!r) return -1;
    auto m = json::parse(r->body);
    if (!m) return -1;
    const auto* v = m.value().find("counters") ? m.value().find("counters")->find(name) : nullptr;
    return v && v->as_int64() ? *v->as_int64() : -1;
  };
  CHECK(test::wait_until([&] { return counter("connections_accepted") >= 7 + 3; }, 10s));
  CHECK(counter("proxy_protocol_rejected") == 1);

  gw.signal(SIGTERM);
  const auto code = gw.wait_exit(10s);
  CHECK(code == 0);
  // The access log (stdout, text format) has a line per request with the
  // client's address as haproxy saw it.
  for (const auto& client : expected) {
    INFO(client);
    CHECK(gw.out().find(" /health ") != std::string::npos);
    CHECK(gw.out().find("ms " + client) != std::string::npos);
  }
  lb.signal(SIGTERM);
  lb.wait_exit(10s);
  std::filesystem::remove_all(dir);
}
