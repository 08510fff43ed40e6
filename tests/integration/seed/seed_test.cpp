// The seed's own Go test suite (tests/gateway_test.go, tests/performance_test.go),
// replayed case by case against the built binary: build/bin/gateway runs as
// a child process on 127.0.0.1:0 and every request goes over a real socket
// (../shared/SEED-CONTRACT.md, "The seed's own tests"). Where the Go tests
// set distinct RemoteAddrs, the clients bind distinct 127.0.0.x source
// addresses; where they sent the placeholder bearer token (which we rightly
// refuse), they send the gateway's configured API key. Each case gets a
// gateway of its own, as each Go test built its own handler, so no case
// spends another's rate-limit budget.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gateway/json/reader.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/report.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

const std::string api_key = "seed-suite-key";
const std::string auth = "X-API-Key: " + api_key + "\r\n";

// The gateway binary (GATEWAY_BIN_DIR/gateway) with the suite's flags,
// stopped with SIGTERM at the end of the case; it must then exit 0 with
// nothing left running, as the seed's requirements ask of a shutdown.
class seed_gateway {
 public:
  explicit seed_gateway(const std::string& backend_url = {}) {
    std::vector<std::string> argv{std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--threads",
                                  "2", "--api-key", api_key, "--access-log", "off"};
    if (!backend_url.empty()) {
      argv.push_back("--backend");
      argv.push_back(backend_url);
    }
    proc_ = std::make_unique<test::child_process>(argv);
    const auto line = proc_->wait_for_line("gateway: listening on", true, 20s);
    if (line) port_ = static_cast<std::uint16_t>(test::port_after_listening_on(*line));
    if (port_ == 0) throw std::runtime_error("the gateway did not announce its port; stderr: " + proc_->err());
  }
  ~seed_gateway() {
    if (!stopped_) proc_->signal(SIGKILL);
  }
  seed_gateway(const seed_gateway&) = delete;
  seed_gateway& operator=(const seed_gateway&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return proc_->pid(); }

  // SIGTERM; true when it exits 0 and its last line says nothing was left.
  void stop_cleanly() {
    stopped_ = true;
    proc_->signal(SIGTERM);
    const auto status = proc_->wait_exit(30s);
    INFO("gateway stderr: " << proc_->err());
    REQUIRE(status);
    CHECK(*status == 0);
    CHECK(proc_->err().find("gateway: stopped (connections 0, coroutines 0, threads 0)") != std::string::npos);
  }

 private:
  std::unique_ptr<test::child_process> proc_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

std::string get(std::string_view target, std::string_view extra = {}) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: seed\r\n" + std::string(extra) + "\r\n";
}

// One request on a fresh connection from `source` (a 127.0.0.x address).
std::optional<test::http_response> request_from(std::uint16_t port, const char* source, const std::string& raw,
                                                std::chrono::milliseconds timeout = 10s) {
  test::raw_client c(port, timeout, source);
  if (!c.send(raw)) return std::nullopt;
  return c.read_response();
}

std::string source_address(unsigned i) { return "127.0.0." + std::to_string(2 + i); }

std::string proc_status(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::stringstream ss;
  ss << '\n' << f.rdbuf();  // a leading newline: every field follows a '\n'
  return ss.str();
}

long threads_of(pid_t pid) {
  const std::string s = proc_status(pid);
  const auto at = s.find("\nThreads:");
  return at == std::string::npos ? -1 : std::stol(s.substr(at + 9));
}

long open_fds_of(pid_t pid) {
  long n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return ec ? -1 : n;
}

bool is_json_content_type(const test::http_response& r) {
  return r.header("Content-Type").rfind("application/json", 0) == 0;
}

}  // namespace

TEST_CASE("seed: HealthReturns200AndJSON", "[seed]") {
  seed_gateway gw;
  auto r = test::http_request(gw.port(), get("/health"));
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(is_json_content_type(*r));
  auto doc = json::parse(r->body);
  REQUIRE(doc);
  REQUIRE(doc.value().find("status"));
  CHECK(doc.value().find("status")->as_string() == "healthy");
  gw.stop_cleanly();
}

TEST_CASE("seed: MetricsReturns200AndJSON", "[seed]") {
  seed_gateway gw;
  auto r = test::http_request(gw.port(), get("/metrics"));
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(is_json_content_type(*r));
  auto doc = json::parse(r->body);
  REQUIRE(doc);
  CHECK(doc.value().is_object());
  gw.stop_cleanly();
}

TEST_CASE("seed: LogsReturns200AndArray", "[seed]") {
  seed_gateway gw;
  auto r = test::http_request(gw.port(), get("/logs", auth));
  REQUIRE(r);
  CHECK(r->status == 200);
  auto doc = json::parse(r->body);
  REQUIRE(doc);
  CHECK(doc.value().is_array());
  gw.stop_cleanly();
}

TEST_CASE("seed: ClearLogsReturns200", "[seed]") {
  seed_gateway gw;
  auto r = test::http_request(gw.port(), test::make_request("POST", "/logs/clear", {}, auth));
  REQUIRE(r);
  CHECK(r->status == 200);
  gw.stop_cleanly();
}

TEST_CASE("seed: HealthAndMetricsSkipAuth", "[seed]") {
  seed_gateway gw;
  for (const char* path : {"/health", "/metrics"}) {
    INFO(path);
    auto r = test::http_request(gw.port(), get(path));
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  gw.stop_cleanly();
}

TEST_CASE("seed: LogsRequiresAuth", "[seed]") {
  seed_gateway gw;
  auto r = test::http_request(gw.port(), get("/logs"));
  REQUIRE(r);
  CHECK(r->status == 401);
  gw.stop_cleanly();
}

TEST_CASE("seed: RequestBodyOver10MBReturns413", "[seed]") {
  seed_gateway gw;
  const std::string body(11u * 1024 * 1024, 'x');
  test::raw_client c(gw.port(), 20s);
  // The gateway may answer (and stop reading) before the whole body is sent.
  (void)c.send(test::make_request("POST", "/logs/clear", body, auth));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 413);
  gw.stop_cleanly();
}

TEST_CASE("seed: NoGoroutineLeakUnderLoad", "[seed]") {
  seed_gateway gw;
  // Settle first: the workers and their timers are up once /health answers.
  REQUIRE(request_from(gw.port(), "127.0.0.1", get("/health"))->status == 200);
  const long threads_before = threads_of(gw.pid());
  const long fds_before = open_fds_of(gw.pid());
  REQUIRE(threads_before > 0);
  REQUIRE(fds_before > 0);
  // 200 requests, each from another client address, 20 at a time.
  std::atomic<int> ok{0}, other{0};
  std::vector<std::thread> clients;
  for (unsigned t = 0; t < 20; ++t) {
    clients.emplace_back([&, t] {
      for (unsigned i = t; i < 200; i += 20) {
        const std::string source = source_address(i);
        auto r = request_from(gw.port(), source.c_str(), get("/health"));
        (r && r->status == 200 ? ok : other).fetch_add(1);
      }
    });
  }
  for (auto& th : clients) th.join();
  CHECK(ok == 200);
  CHECK(other == 0);
  // No more threads than before, and every connection's socket closed again
  // (the gateway closes them as the clients go, within a short deadline).
  CHECK(threads_of(gw.pid()) <= threads_before);
  CHECK(test::wait_until([&] { return open_fds_of(gw.pid()) <= fds_before; }, 5000ms));
  INFO("open fds before " << fds_before << ", after " << open_fds_of(gw.pid()));
  CHECK(open_fds_of(gw.pid()) <= fds_before);
  gw.stop_cleanly();
}

TEST_CASE("seed: RequestBody10MBIsAccepted", "[seed]") {
  test::recording_backend backend;
  seed_gateway gw(backend.url());
  const std::string body(10u * 1024 * 1024, 'y');
  test::raw_client c(gw.port(), 30s);
  REQUIRE(c.send(test::make_request("POST", "/api/foo", body, auth)));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  REQUIRE(backend.request_count() == 1);
  const auto got = backend.requests().front();
  CHECK(got.target == "/foo");
  CHECK(got.body.size() == body.size());
  CHECK(got.body == body);
  gw.stop_cleanly();
}

TEST_CASE("seed: ProxyContractValidation", "[seed]") {
  test::recording_backend backend;
  backend.set_script([](const test::recorded_request&) {
    return test::reply{"HTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\ncreated"};
  });
  seed_gateway gw(backend.url());
  const std::string payload = R"({"test":"payload"})";
  auto r = test::http_request(gw.port(), test::make_request("PUT", "/api/some/complex/path", payload,
                                                            auth + "X-Test-Header: test-value\r\n"));
  REQUIRE(r);
  CHECK(r->status == 201);
  CHECK(r->body == "created");
  REQUIRE(backend.request_count() == 1);
  const auto got = backend.requests().front();
  CHECK(got.method == "PUT");
  CHECK(got.target == "/some/complex/path");
  CHECK(got.head.find("\r\nX-Test-Header: test-value\r\n") != std::string::npos);
  CHECK(got.body == payload);
  gw.stop_cleanly();
}

TEST_CASE("seed: RateLimiterAccuracy", "[seed]") {
  seed_gateway gw;
  // One client (one address, as the Go test's fixed RemoteAddr), new
  // connections each time as httptest's recorder had none to keep.
  for (int i = 1; i <= 100; ++i) {
    auto r = request_from(gw.port(), "127.0.0.9", get("/health"));
    REQUIRE(r);
    INFO("request " << i);
    REQUIRE(r->status == 200);
  }
  auto limited = request_from(gw.port(), "127.0.0.9", get("/health"));
  REQUIRE(limited);
  CHECK(limited->status == 429);
  CHECK(!limited->header("Retry-After").empty());
  gw.stop_cleanly();
}

TEST_CASE("seed: PerformanceLoad", "[seed]") {
  test::recording_backend backend;
  backend.set_recording(false);
  backend.set_script([](const test::recorded_request&) {
    test::reply rep{test::ok_response("ok")};
    rep.delay = 2ms;  // the Go test's backend slept 2 ms
    return rep;
  });
  seed_gateway gw(backend.url());
  // 100 clients, each from its own address on its own connection, 5 GETs each.
  constexpr unsigned clients = 100, per_client = 5;
  struct outcome {
    int ok = 0;
    double p50 = 0, p99 = 0, max = 0;
    std::uint64_t peak_rss = 0;
  };
  auto run = [&] {
    std::vector<std::vector<double>> latencies(clients);
    std::atomic<int> ok{0};
    std::atomic<std::uint64_t> peak_rss{0};
    std::atomic<bool> done{false};
    std::thread sampler([&] {
      while (!done.load()) {
        peak_rss = std::max<std::uint64_t>(peak_rss.load(), test::rss_of(gw.pid()));
        std::this_thread::sleep_for(5ms);
      }
    });
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        const std::string source = source_address(t);
        test::raw_client c(gw.port(), 10s, source.c_str());
        for (unsigned i = 0; i < per_client; ++i) {
          const auto start = std::chrono::steady_clock::now();
          std::optional<test::http_response> r;
          if (c.send(get("/api/test", auth))) r = c.read_response();
          latencies[t].push_back(
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
          if (r && r->status == 200) ok.fetch_add(1);
        }
      });
    }
    for (auto& th : threads) th.join();
    done = true;
    sampler.join();
    std::vector<double> all;
    for (const auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    outcome o;
    o.ok = ok.load();
    o.p50 = all[all.size() / 2];
    o.p99 = all[(all.size() * 99 + 99) / 100 - 1];
    o.max = all.back();
    o.peak_rss = std::max<std::uint64_t>(peak_rss.load(), test::rss_of(gw.pid()));
    return o;
  };
  outcome o = run();
  // Latency depends on what else the machine runs (the perf gates do the
  // same): a run whose only failure is p99 gets one more try.
  if (o.ok == static_cast<int>(clients * per_client) && o.p99 >= 200.0) {
    GATEWAY_REPORT("p99 " << o.p99 << " ms on the first run (load: " << [] {
      std::ifstream f("/proc/loadavg");
      std::string l;
      std::getline(f, l);
      return l;
    }() << "); one more try");
    o = run();
  }
  INFO("p50 " << o.p50 << " ms, p99 " << o.p99 << " ms, max " << o.max << " ms, peak RSS " << o.peak_rss / 1024
              << " KiB");
  CHECK(o.ok == static_cast<int>(clients * per_client));
  CHECK(o.p99 < 200.0);
  CHECK(o.peak_rss > 0);
  if (test::rss_checks_apply) CHECK(o.peak_rss < 500ull * 1024 * 1024);
  gw.stop_cleanly();
}

TEST_CASE("seed: MemoryBaselineRecovery", "[seed]") {
  test::recording_backend backend;
  backend.set_recording(false);
  seed_gateway gw(backend.url());
  // Warm up (workers, pools, one body through), then the baseline.
  const std::string body(1024 * 1024, 'm');
  REQUIRE(request_from(gw.port(), "127.0.0.1", test::make_request("POST", "/api/test", body, auth))->status == 200);
  const std::uint64_t baseline = test::rss_of(gw.pid());
  REQUIRE(baseline > 0);
  // 50 POSTs of 1 MiB, each from its own client address, all at once.
  std::atomic<int> ok{0}, other{0};
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      const std::string source = source_address(i);
      auto r = request_from(gw.port(), source.c_str(), test::make_request("POST", "/api/test", body, auth), 30s);
      (r && r->status == 200 ? ok : other).fetch_add(1);
    });
  }
  for (auto& th : threads) th.join();
  CHECK(ok == 50);
  CHECK(other == 0);
  // Back within 100 MB of the baseline after a few seconds.
  constexpr std::uint64_t tolerance = 100ull * 1000 * 1000;
  const bool recovered = test::wait_until([&] { return test::rss_of(gw.pid()) <= baseline + tolerance; }, 5000ms);
  INFO("baseline " << baseline / 1024 << " KiB, now " << test::rss_of(gw.pid()) / 1024 << " KiB");
  if (test::rss_checks_apply) CHECK(recovered);
  gw.stop_cleanly();
}
