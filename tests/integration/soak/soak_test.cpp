// The soak: 60 s of mixed traffic against the whole gateway, with a backend
// that fails some of the time: normal clients (open loop, measured by the
// project's loadtest), 2,000 slowloris connections, oversized and malformed
// requests. Asserts no crash, nothing leaked at shutdown, RSS bounded
// throughout, and the normal clients' p99 under 50 ms.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "gateway/json/reader.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/files.hpp"
#include "tests/support/slow_clients.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

using clock_type = std::chrono::steady_clock;

TEST_CASE("soak: 2,000 connections of mixed normal, slow, oversized and malformed clients for 60 s", "[soak]") {
  REQUIRE(test::raise_descriptor_limit(16384) >= 8192);

  test::recording_backend backend;
  backend.set_recording(false);
  std::atomic<std::uint64_t> backend_calls{0};
  backend.set_script([&](const test::recorded_request&) {
    test::reply r;
    // One request in 50 finds the backend resetting the connection: 502.
    if (++backend_calls % 50 == 0) {
      r.after = test::reply::then::reset;
      return r;
    }
    r.bytes = test::ok_response("ok");
    return r;
  });

  auto cfg = test::test_config();
  cfg.backend = backend.url();
  cfg.api_keys = {"soak-key"};
  cfg.rate_limit_enabled = false;
  cfg.header_timeout = 2s;
  cfg.body_timeout = 2s;
  cfg.drain_timeout = 3s;
  test::running_server srv(cfg);
  const auto port = srv.port();
  const auto duration = 60s;
  const auto t_end = clock_type::now() + duration;
  const std::size_t rss_start = test::rss_bytes();
  std::atomic<std::size_t> rss_peak{rss_start};
  std::atomic<bool> done{false};

  // RSS every 250 ms until the run is done (and at once when it is).
  std::thread sampler([&] {
    do {
      std::size_t r = test::rss_bytes();
      if (r > rss_peak) rss_peak = r;
    } while (!test::wait_until([&] { return done.load(); }, 250ms));
  });

  // 2,000 slowloris connections: one byte of head every second; the
  // gateway times them out (408) and they come back.
  test::slow_clients slowloris(port, 2000, 1000ms);

  // Oversized and malformed clients.
  std::atomic<std::uint64_t> hostile_ok{0}, hostile_bad{0};
  std::thread hostile([&] {
    const std::vector<std::string> bad = {
        "POST /api/x HTTP/1.1\r\nHost: t\r\nX-API-Key: soak-key\r\nContent-Length: 20000000\r\n\r\nxxxx",
        "GET /api/x HTTP/1.1\r\nHost: t\r\nX-Bad : 1\r\n\r\n",
        "POST /api/x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /api/x HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n",
        std::string("GET /api/x HTTP/1.1\r\nHost: t\r\nX-A: \x01\r\n\r\n"),
    };
    for (std::size_t i = 0; clock_type::now() < t_end; ++i) {
      try {
        auto r = test::http_request(port, bad[i % bad.size()]);
        if (r && r->status >= 400 && r->status < 500) ++hostile_ok;
        else ++hostile_bad;
      } catch (...) {
        ++hostile_bad;
      }
      test::wait_until([&] { return clock_type::now() >= t_end; }, 20ms);  // 50 a second, until the end
    }
  });

  // Normal clients, measured by the project's load generator (open loop).
  std::string json_path = "/tmp/gateway_soak_" + std::to_string(::getpid()) + ".json";
  pid_t lt = ::fork();
  REQUIRE(lt >= 0);
  if (lt == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    std::string url = "http://127.0.0.1:" + std::to_string(port) + "/api/normal";
    const char* bin = GATEWAY_BIN_DIR "/loadtest";
    ::execl(bin, bin, "--url", url.c_str(), "--connections", "200", "--rate", "2000", "--duration", "55s", "--warmup",
            "2s", "--header", "X-API-Key: soak-key", "--expect-status", "200,502", "--json", json_path.c_str(),
            "--quiet", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int lt_status = 0;
  ::waitpid(lt, &lt_status, 0);
  slowloris.stop();
  const auto slow_reconnects = slowloris.connects();
  hostile.join();
  done = true;
  sampler.join();

  std::ifstream jf(json_path);
  std::string report((std::istreambuf_iterator<char>(jf)), std::istreambuf_iterator<char>());
  std::remove(json_path.c_str());
  auto doc = json::parse(report);
  REQUIRE(doc);
  const auto& rep = doc.value();
  double p99 = rep.find("latency_ms")->find("p99")->as_double();
  auto requests = rep.find("requests")->as_int64().value_or(0);
  INFO("loadtest report: " << report);
  INFO("slowloris reconnects: " << slow_reconnects << ", hostile answered 4xx: " << hostile_ok
                                << ", other: " << hostile_bad);
  INFO("RSS start " << rss_start / 1048576 << " MiB, peak " << rss_peak / 1048576 << " MiB");
  CHECK(WIFEXITED(lt_status));
  // Throughput and latency are properties of the plain build; under a
  // sanitizer the same traffic still has to pass without a crash or a leak.
  if (test::rss_checks_apply) {
    CHECK(requests >= 100000);
    CHECK(p99 < 50.0);
  }
  CHECK(hostile_ok > 1000);
  CHECK(hostile_bad == 0);
  CHECK(slow_reconnects > 2000);  // they were shed and came back
  CHECK(rss_peak < 500u * 1024 * 1024);
  if (test::rss_checks_apply) CHECK(rss_peak < rss_start + cfg.body_budget);

  srv.stop_and_wait();
  auto live = srv.server().live();
  CHECK(live.connections == 0);
  CHECK(live.coroutines == 0);
  CHECK(live.requests_in_flight == 0);
  CHECK(live.threads == 0);
  CHECK(live.session_exceptions == 0);
  CHECK(live.timeouts > 0);
}
