// A client that stops reading a large streamed response: the gateway's
// writes to it stall, back-pressure stops the backend (nothing piles up in
// memory), other clients are served meanwhile, and --write-timeout closes
// the stalled connection. The real binary runs as a child process, so its
// RSS is the gateway's alone.
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <string>

#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/report.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::string get(std::string_view target) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\nX-API-Key: k\r\n\r\n";
}

}  // namespace

TEST_CASE("a client that stops reading a 200 MiB response is closed at --write-timeout, with memory bounded "
          "and other clients served meanwhile",
          "[integration][hardening]") {
  constexpr std::uint64_t size = 200ull << 20;
  constexpr auto write_timeout = 1000ms;
  test::recording_backend backend;
  backend.set_recording(false);
  backend.set_script([](const test::recorded_request& r) {
    if (r.target == "/big")
      return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n", size};
    return test::reply{test::ok_response("small")};
  });
  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--backend",
                          backend.url(), "--threads", "2", "--api-key", "k", "--access-log", "off", "--rate-limit", "off", "--write-timeout",
                          std::to_string(write_timeout.count()) + "ms"});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  REQUIRE(listening);
  const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  REQUIRE(port != 0);

  // Warm up both workers' pools and buffers, then take the baseline.
  for (int i = 0; i < 20; ++i) REQUIRE(test::http_request(port, get("/api/small"))->status == 200);
  const std::uint64_t baseline = test::rss_of(gw.pid());
  REQUIRE(baseline > 0);

  test::raw_client slow(port, 30000ms);
  REQUIRE(slow.send(get("/api/big")));
  std::string got;
  char buf[65536];
  while (got.size() < (1u << 20)) {  // the head and the first MiB, then no more reading
    const ssize_t n = ::recv(slow.fd(), buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got.append(buf, static_cast<std::size_t>(n));
  }
  REQUIRE(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  const auto stalled_at = std::chrono::steady_clock::now();

  // While it stalls: other clients are served and the gateway's RSS stays
  // near its baseline (the backend is held back, not buffered).
  std::uint64_t peak = baseline;
  int served = 0;
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() - stalled_at < 10s) {
    auto r = test::http_request(port, get("/api/small"));
    if (r && r->status == 200 && r->body == "small") ++served;
    peak = std::max(peak, test::rss_of(gw.pid()));
    closed = test::gauge(port, "connections") == 1;  // the /metrics request's own connection only
  }
  const auto closed_after = std::chrono::steady_clock::now() - stalled_at;
  INFO("closed after " << std::chrono::duration_cast<std::chrono::milliseconds>(closed_after).count()
                       << " ms; RSS baseline " << baseline / 1024 << " KiB, peak " << peak / 1024 << " KiB; "
                       << served << " other requests served");
  REQUIRE(closed);
  // Not before the timeout (the last write to it started after it stopped
  // reading), and not much after it (the sweep runs every timeout / 4).
  CHECK(closed_after >= write_timeout);
  CHECK(closed_after < write_timeout + 3s);
  CHECK(served >= 5);
  if (test::rss_checks_apply) CHECK(peak < baseline + 8u * 1024 * 1024);
  // The backend connection that was cut short is closed, not pooled.
  CHECK(test::wait_until(
      [&] { return test::gauge(port, "upstream_connections") == test::gauge(port, "upstream_idle_connections"); },
      5000ms));

  // What the client still finds in its socket is an intact prefix, then the end.
  for (;;) {
    const ssize_t n = ::recv(slow.fd(), buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  const std::size_t head_end = got.find("\r\n\r\n") + 4;
  const std::uint64_t body = got.size() - head_end;
  CHECK(body < size);
  std::uint64_t wrong = 0;
  for (std::uint64_t i = 0; i < body; ++i) wrong += got[head_end + i] != test::pattern_byte(i);
  CHECK(wrong == 0);
  GATEWAY_REPORT("slow reader: closed " << std::chrono::duration_cast<std::chrono::milliseconds>(closed_after).count()
                                        << " ms after it stopped reading (--write-timeout " << write_timeout.count()
                                        << "ms), after " << body / 1024 << " KiB of " << size / 1024
                                        << " KiB; gateway RSS " << baseline / 1024 << " -> peak " << peak / 1024
                                        << " KiB; " << served << " other requests served meanwhile");

  gw.signal(SIGTERM);
  const auto status = gw.wait_exit(15s);
  REQUIRE(status);
  CHECK(*status == 0);
}
