// loadtest as a CI gate for a service that is not the gateway (echo_backend
// here): its exit status and messages when checks fail and when they hold.
#include "tests/perf/perf_fixture.hpp"

#include <catch2/catch.hpp>

#include <csignal>

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
