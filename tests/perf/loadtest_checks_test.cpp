// loadtest as a CI gate for a service that is not the gateway (echo_backend
// here): its exit status and messages when checks fail and when they hold.
#include "tests/perf/blocking_http.hpp"
#include "tests/perf/perf_fixture.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace gateway;
using namespace std::chrono_literals;

TEST_CASE("loadtest fails a run with exit status 3 and names each check that failed", "[perf][loadtest]") {
  perf::temp_dir dir;
  auto backend = perf::start_echo_backend();
  const std::string url = "http://127.0.0.1:" + std::to_string(backend.port) + "/";
  const std::vector<std::string> shape{"--url", url, "--connections", "4", "--duration", "500ms", "--warmup", "0s"};
  const auto with = [&](std::vector<std::string> extra) {
    auto args = shape;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };

  const auto good = perf::run_loadtest(with({"--fail-if", "errors>0", "--fail-if", "p99>10s"}), dir, "good", 60s);
  INFO(good.output);
  CHECK(good.exit_status == 0);
  CHECK(perf::number_at(good.report, {"schema_version"}) == 1);
  const json::value* checks = good.report.find("checks");
  REQUIRE(checks != nullptr);
  CHECK(checks->size() == 2);

  const auto bad = perf::run_loadtest(
      with({"--fail-if", "rps<1000000000", "--fail-if", "errors>0", "--fail-if", "p99>=1ns", "--baseline",
            dir.file("good.json"), "--regression-metrics", "requests", "--max-regression", "0.001%"}),
      dir, "bad", 60s);
  INFO(bad.output);
  CHECK(bad.exit_status == 3);
  CHECK(bad.output.find("CHECK FAILED rps<1000000000: rps is") != std::string::npos);
  CHECK(bad.output.find("CHECK FAILED p99>=1ns") != std::string::npos);
  CHECK(bad.output.find("CHECK FAILED errors>0") == std::string::npos);
  CHECK(bad.output.find("check ok      errors>0") != std::string::npos);
  // Against the first run's report: two runs of the same length rarely
  // count the same requests, and the run that counts more is not a
  // regression. Either way the comparison is reported.
  CHECK(bad.output.find("regression:requests") != std::string::npos);

  // A bad condition stops loadtest before any load.
  const auto refused = perf::run_loadtest(with({"--fail-if", "p99>50"}), dir, "refused", 60s);
  CHECK(refused.exit_status == 2);
  CHECK(refused.output.find("give a unit") != std::string::npos);
  CHECK_FALSE(refused.report.is_object());

  backend.proc->signal(SIGTERM);
  CHECK(backend.proc->wait_exit(10s) == 0);
}

namespace {

// Open descriptors of process `pid` (its /proc/PID/fd entries).
std::size_t open_fds(pid_t pid) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

// TCP connections on IPv4 loopback whose local port is `port`, in any state
// but LISTEN and TIME_WAIT (/proc/net/tcp): a server's side of the
// connections made to it that it has not closed yet.
std::size_t server_side_connections(unsigned port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // the header
  std::size_t n = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    const std::size_t colon = local.find(':');
    if (colon == std::string::npos) continue;
    if (std::stoul(local.substr(colon + 1), nullptr, 16) == port && state != "0A" && state != "06") ++n;
  }
  return n;
}

}  // namespace

// compare.sh's floor row: the forwarder must carry requests and responses
// unchanged in both of its modes, and give the backend's connections back
// when the clients leave (a forwarder that leaked them would hold one
// backend connection per client connection of every run).
TEST_CASE("tcp_forwarder carries keep-alive requests both ways and closes each backend connection with its client",
          "[perf][loadtest]") {
  auto backend = perf::start_echo_backend();
  std::vector<std::string> modes{"epoll"};
#if defined(TCP_FORWARDER_HAS_IO_URING)
  modes.push_back("io_uring");
#endif
  for (const std::string& mode : modes) {
    INFO("--io " << mode);
    REQUIRE(server_side_connections(backend.port) == 0);
    test::child_process forwarder({perf::bin_path("tcp_forwarder"), "--backend",
                                   "127.0.0.1:" + std::to_string(backend.port), "--threads", "2", "--io", mode});
    const auto line = forwarder.wait_for_line("listening on", false, 10s);
    REQUIRE(line.has_value());
    const unsigned port = perf::port_after_listening_on(*line);
    REQUIRE(port != 0);
    {
      perf::blocking_clients clients(static_cast<std::uint16_t>(port), 16,
                                     "GET /items HTTP/1.1\r\nHost: backend\r\nX-API-Key: loadtest-key\r\n\r\n");
      REQUIRE(clients.size() == 16);
      CHECK(clients.run_in_waves(50) == 0);
      CHECK(clients.run_one_at_a_time(20) == 0);
      CHECK(server_side_connections(backend.port) == 16);
    }
    // The clients closed: each backend connection is closed after its client's.
    std::size_t left = 0;
    for (int i = 0; i < 100; ++i) {
      left = server_side_connections(backend.port);
      if (left == 0) break;
      std::this_thread::sleep_for(50ms);
    }
    INFO("the forwarder's open descriptors: " << open_fds(forwarder.pid()));
    CHECK(left == 0);
    forwarder.signal(SIGTERM);
    CHECK(forwarder.wait_exit(10s) == 0);
  }
  // A mode it does not have, or no backend: refused before listening.
  test::child_process bad({perf::bin_path("tcp_forwarder"), "--backend", "127.0.0.1:1", "--io", "kqueue"});
  CHECK(bad.wait_exit(10s) == 2);
  test::child_process none({perf::bin_path("tcp_forwarder")});
  CHECK(none.wait_exit(10s) == 2);
  backend.proc->signal(SIGTERM);
  CHECK(backend.proc->wait_exit(10s) == 0);
}
