// The throughput-ratio gate: req/s through the gateway divided by req/s
// straight to the backend, both measured in the same run with the same
// closed-loop load (same connections, same requests, same source addresses),
// interleaved round by round so drift in the machine's speed hits both.
// The ratio does not depend much on how fast the machine is, so it is held
// against a committed baseline (loadtest/baseline.json) with a stated
// tolerance: it fails below baseline x (1 - tolerance).
#include "tests/perf/perf_fixture.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <sstream>

using namespace gateway;
using namespace std::chrono_literals;

namespace {

struct ratio_baseline {
  double ratio = 0;
  double tolerance = 0;
  unsigned connections = 0;
  std::string duration, warmup;
  unsigned rounds = 0;
};

// Reads the "throughput_ratio" object of loadtest/baseline.json.
std::optional<ratio_baseline> read_baseline(std::string& error) {
  std::ifstream in(perf::source_path("loadtest/baseline.json"), std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = json::parse(text.str());
  if (!parsed) {
    error = "loadtest/baseline.json: " + parsed.error().message;
    return std::nullopt;
  }
  const json::value* r = parsed.value().find("throughput_ratio");
  if (r == nullptr) {
    error = "loadtest/baseline.json has no throughput_ratio";
    return std::nullopt;
  }
  ratio_baseline b;
  b.ratio = perf::number_at(*r, {"gateway_to_direct"});
  b.tolerance = perf::number_at(*r, {"tolerance"});
  b.connections = static_cast<unsigned>(perf::number_at(*r, {"connections"}));
  b.rounds = static_cast<unsigned>(perf::number_at(*r, {"rounds"}));
  const json::value* d = r->find("duration");
  const json::value* w = r->find("warmup");
  b.duration = d != nullptr ? std::string(d->as_string()) : "";
  b.warmup = w != nullptr ? std::string(w->as_string()) : "";
  if (!(b.ratio > 0 && b.tolerance >= 0 && b.tolerance < 1 && b.connections > 0 && b.rounds > 0 &&
        !b.duration.empty() && !b.warmup.empty())) {
    error = "loadtest/baseline.json: throughput_ratio needs gateway_to_direct > 0, 0 <= tolerance < 1, "
            "connections, rounds, duration and warmup";
    return std::nullopt;
  }
  return b;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

TEST_CASE("gateway throughput as a share of the backend alone stays within the tolerance of loadtest/baseline.json",
          "[perf][gate]") {
  std::string error;
  const auto baseline = read_baseline(error);
  INFO(error);
  REQUIRE(baseline);
  perf::raise_open_file_limit();
  perf::temp_dir dir;
  auto backend = perf::start_echo_backend();
  auto gw = perf::start_gateway(perf::gateway_flags(backend.port));

  // Identical load for both: only the URL differs (the gateway strips /api).
  const auto load = [&](const std::string& url, const std::string& name) {
    auto run = perf::run_loadtest({"--url", url, "--connections", std::to_string(baseline->connections), "--duration",
                                   baseline->duration, "--warmup", baseline->warmup, "--source-ips", "250",
                                   "--header", "X-API-Key: " + std::string(perf::perf_api_key), "--expect-status",
                                   "200"},
                                  dir, name, 60s);
    INFO(name << " loadtest output:\n" << run.output);
    REQUIRE(run.report.is_object());
    CHECK(perf::number_at(run.report, {"errors", "total"}) == 0);
    return perf::number_at(run.report, {"rps"});
  };
  const std::string direct_url = "http://127.0.0.1:" + std::to_string(backend.port) + "/items";
  const std::string gateway_url = "http://127.0.0.1:" + std::to_string(gw.port) + "/api/items";
  std::vector<double> ratios;
  for (unsigned round = 1; round <= baseline->rounds; ++round) {
    const double direct = load(direct_url, "direct" + std::to_string(round));
    const double through = load(gateway_url, "gateway" + std::to_string(round));
    REQUIRE(direct > 0);
    ratios.push_back(through / direct);
    WARN("throughput ratio, round " << round << ": gateway " << through << " req/s, direct " << direct
                                    << " req/s, ratio " << through / direct);
  }
  const double ratio = median(ratios);
  const double floor = baseline->ratio * (1 - baseline->tolerance);
  WARN("throughput ratio: median " << ratio << ", baseline " << baseline->ratio << ", fails below " << floor);
  if (ratio > baseline->ratio * (1 + baseline->tolerance))
    WARN("the ratio is well above the baseline: update loadtest/baseline.json to keep the gate tight");
  CHECK(ratio >= floor);

  CHECK(perf::shutdown_gate_failures(*gw.proc, 15s).empty());
  backend.proc->signal(SIGTERM);
  CHECK(backend.proc->wait_exit(10s) == 0);
}
