// The machine-dependent gates: the Release gateway as a child process in
// front of echo_backend, loaded by loadtest in open loop with the committed
// scenario (loadtest/scenarios/open-loop.conf: 2,000 connections, 10,000
// req/s, 2 s warm-up, 10 s measured). The bounds (perf_fixture.hpp) are
// generous on purpose; what fails on a noisy machine is retried once (see
// below), what does not depend on speed is not.
#include "tests/perf/perf_fixture.hpp"
#include "tests/support/report.hpp"

#include <catch2/catch.hpp>

#include <csignal>

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<std::string> open_loop_args(unsigned gateway_port, int gateway_pid) {
  return {"--scenario",      perf::source_path("loadtest/scenarios/open-loop.conf"),
          "--url",           "http://127.0.0.1:" + std::to_string(gateway_port) + "/",
          "--expect-status", "200",
          "--pid",           std::to_string(gateway_pid)};
}

}  // namespace

TEST_CASE("at 10000 req/s over 2000 connections the gateway keeps p99 under 50 ms and CPU under 70 % of a core "
          "and RSS under 500 MiB that returns to its baseline and then shuts down with nothing alive",
          "[perf][gate][open-loop]") {
  perf::raise_open_file_limit();
  perf::temp_dir dir;
  auto backend = perf::start_echo_backend();
  auto gw = perf::start_gateway(perf::gateway_flags(backend.port));
  const auto base = open_loop_args(gw.port, gw.proc->pid());

  // A first, short pass at the same shape fills what the gateway keeps by
  // design and bounds by configuration (the /logs ring of 10,000 entries,
  // the rate limiter's 250 clients, the upstream pools, allocator arenas),
  // so the gated pass's RSS baseline is the warmed idle gateway and
  // "back to baseline" means no growth and no leak.
  const auto warm = perf::run_loadtest(base + std::vector<std::string>{"--duration", "2s", "--warmup", "0s",
                                                                        "--settle-timeout", "3s"},
                                       dir, "warm", 60s);
  INFO("loadtest output (warm-up pass):\n" << warm.output);
  REQUIRE(warm.report.is_object());
  GATEWAY_REPORT("open-loop gate, warm-up pass: " << perf::summarize(warm.report));
  CHECK(perf::number_at(warm.report, {"errors", "total"}) == 0);

  // p99 and CPU depend on what else the machine runs; one noisy neighbour
  // (a compiler on the other core) can push a run over. Those two get a
  // second run; a regression fails both. Every other gate counts at once.
  std::vector<std::string> failures;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    const auto run = perf::run_loadtest(base + std::vector<std::string>{"--settle-timeout", "30s"}, dir,
                                        "gate" + std::to_string(attempt), 120s);
    failures = perf::open_loop_gate_failures(run.report, perf::open_loop_limits{});
    GATEWAY_REPORT("open-loop gate, run "
                   << attempt << ": " << perf::summarize(run.report)
                   << (failures.empty() ? std::string(" -- all gates pass") : " -- failed: " + perf::join(failures)));
    bool only_speed = !failures.empty();
    for (const auto& f : failures)
      if (!perf::has_gate({f}, "p99") && !perf::has_gate({f}, "cpu")) only_speed = false;
    if (!only_speed) {
      if (!failures.empty()) GATEWAY_REPORT("loadtest output:\n" << run.output);
      break;
    }
  }
  INFO(perf::join(failures));
  CHECK(failures.empty());

  const auto shutdown = perf::shutdown_gate_failures(*gw.proc, 15s);
  INFO(perf::join(shutdown) << "\ngateway stderr:\n" << gw.proc->err());
  CHECK(shutdown.empty());
  backend.proc->signal(SIGTERM);
  CHECK(backend.proc->wait_exit(10s) == 0);
}

TEST_CASE("the p99 gate fails when the backend takes 80 ms to answer", "[perf][gate]") {
  perf::raise_open_file_limit();
  perf::temp_dir dir;
  auto backend = perf::start_echo_backend({"--delay", "80ms"});
  auto gw = perf::start_gateway(perf::gateway_flags(backend.port));
  // The gate's scenario, smaller: the added latency, not the load, is what
  // must trip the gate.
  const auto run = perf::run_loadtest(
      open_loop_args(gw.port, gw.proc->pid()) + std::vector<std::string>{"--connections", "200", "--rate", "1000",
                                                                         "--duration", "3s", "--warmup", "1s",
                                                                         "--settle-timeout", "1s"},
      dir, "delayed", 60s);
  INFO("loadtest output:\n" << run.output);
  REQUIRE(run.report.is_object());
  const auto failures = perf::open_loop_gate_failures(run.report, perf::open_loop_limits{});
  GATEWAY_REPORT("p99 gate with an 80 ms backend: " << perf::summarize(run.report) << " -- " << perf::join(failures));
  CHECK(perf::number_at(run.report, {"latency_ms", "p99"}) >= 80.0);
  CHECK(perf::has_gate(failures, "p99"));
  // Nothing else went wrong: the gate failed for the latency alone.
  CHECK_FALSE(perf::has_gate(failures, "errors"));
  CHECK_FALSE(perf::has_gate(failures, "status"));
  CHECK(perf::shutdown_gate_failures(*gw.proc, 15s).empty());
}

TEST_CASE("the shutdown gate fails on a non-zero exit or on anything still alive after stop", "[perf][gate]") {
  // Stand-ins for the gateway: shell one-liners that ignore SIGTERM, print a
  // final line and exit.
  const auto gate = [](const char* script) {
    perf::child_process p({"/bin/sh", "-c", std::string("trap '' TERM; ") + script});
    // SIGTERM only once the trap is set, i.e. once the line is out.
    REQUIRE(p.wait_for_line("gateway:", true, 10s));
    return perf::shutdown_gate_failures(p, 10s);
  };
  CHECK(gate("echo 'gateway: stopped (connections 0, coroutines 0, threads 0)' >&2").empty());
  CHECK(perf::has_gate(gate("echo 'gateway: stopped (connections 0, coroutines 3, threads 0)' >&2"), "shutdown"));
  CHECK(perf::has_gate(gate("echo 'gateway: stopped (connections 2, coroutines 0, threads 0)' >&2"), "shutdown"));
  CHECK(perf::has_gate(gate("echo 'gateway: stopped (connections 0, coroutines 0, threads 0)' >&2; exit 3"),
                       "shutdown"));
  CHECK(perf::has_gate(gate("echo 'gateway: draining' >&2"), "shutdown"));
  const auto counts = perf::parse_stopped_line("gateway: stopped (connections 1, coroutines 2, threads 3)");
  REQUIRE(counts);
  CHECK(counts->connections == 1);
  CHECK(counts->coroutines == 2);
  CHECK(counts->threads == 3);
}

TEST_CASE("the open-loop gates read a loadtest report and name each bound that is crossed", "[perf][gate]") {
  const auto report = [](const char* text) { return json::parse(text).value(); };
  const char* good =
      R"({"rate": 10000, "duration_s": 10, "requests": 100000, "dropped": 0, "errors": {"total": 0},
          "latency_ms": {"p99": 12.5}, "status_counts": {"200": 100000},
          "target": {"cpu_pct": 40, "rss_peak_bytes": 60000000, "settled": true, "settle_s": 2.5,
                     "rss_end_bytes": 20000000, "rss_baseline_bytes": 19000000}})";
  CHECK(perf::open_loop_gate_failures(report(good), {}).empty());
  const char* bad =
      R"({"rate": 10000, "duration_s": 10, "requests": 50000, "dropped": 7, "errors": {"total": 3},
          "latency_ms": {"p99": 75}, "status_counts": {"200": 49990, "502": 10},
          "target": {"cpu_pct": 71, "rss_peak_bytes": 600000000, "settled": false, "settle_s": 30.1,
                     "rss_end_bytes": 90000000, "rss_baseline_bytes": 19000000}})";
  const auto failures = perf::open_loop_gate_failures(report(bad), {});
  for (const char* gate : {"p99", "cpu", "rss-peak", "rss-settle", "errors", "dropped", "status", "volume"}) {
    INFO(gate << " in " << perf::join(failures));
    CHECK(perf::has_gate(failures, gate));
  }
  // A report without the sampler's figures fails rather than passing unseen.
  CHECK(perf::has_gate(perf::open_loop_gate_failures(report(R"({"latency_ms": {"p99": 1}})"), {}), "cpu"));
  CHECK(perf::has_gate(perf::open_loop_gate_failures(json::value(), {}), "report"));
}
