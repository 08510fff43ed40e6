// The performance gates (gate/gates.hpp) on this build: the deterministic
// gates hold against loadtest/baseline.json, and each fault the hooked
// binary injects (gateway/core/perf_inject.hpp) fails exactly the gates
// that are there to catch it.
#include "tests/perf/gate/gates.hpp"
#include "tests/support/report.hpp"

#include <catch2/catch.hpp>

#include <time.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>
#include <utility>

#include "gateway/core/perf_inject.hpp"

using namespace gateway;

namespace {

perf::gate_baseline committed_baseline() {
  std::string error;
  auto b = perf::read_baseline(perf::source_path("loadtest/baseline.json"), error);
  INFO(error);
  REQUIRE(b);
  return *b;
}

perf::system_under_test hooked(const std::string& injection) {
  perf::system_under_test s{injection.empty() ? "hook off" : injection, perf::bin_path("gateway_perf_inject"), {}};
  if (!injection.empty()) s.env.push_back("GATEWAY_INJECT=" + injection);
  return s;
}

std::vector<perf::gate_result> deterministic_gates(const perf::system_under_test& s) {
  const auto b = committed_baseline();
  const perf::gate_selection all{true, true, true, true, false};
  auto m = perf::measure_deterministic(s, b, all, std::cerr);
  auto results = perf::judge_deterministic(m, b, all);
  // Callgrind counts the event loop's passes too, and how many of a wave's
  // requests one pass finds depends on timing (one run in about ten read
  // 7 % over the others on the 100-connection shape). An instructions gate
  // over its limit is measured once more and the lower of the two figures
  // judged: timing only adds passes, so the lower is the closer to what the
  // code costs, and a change that costs instructions is over in both.
  const bool instructions_over = std::any_of(results.begin(), results.end(), [](const perf::gate_result& r) {
    return !r.pass && r.name.rfind("instructions.", 0) == 0;
  });
  if (instructions_over) {
    const perf::gate_selection instructions_only{false, false, true, false, false};
    const auto again = perf::measure_deterministic(s, b, instructions_only, std::cerr);
    for (const auto& [mine, other] : {std::pair{&m.one, &again.one}, std::pair{&m.many, &again.many}}) {
      const auto first = perf::instructions_per_request(*mine);
      const auto second = perf::instructions_per_request(*other);
      if (second && (!first || *second < *first)) {
        mine->instructions = other->instructions;
        mine->instruction_requests = other->instruction_requests;
      }
    }
    GATEWAY_REPORT("instructions measured again (" << s.label << "): the first run was over a limit");
    results = perf::judge_deterministic(m, b, all);
  }
  std::string lines;
  for (const auto& r : results) lines += perf::format_line(r) + "\n";
  GATEWAY_REPORT("deterministic gates, " << s.label << ":\n" << lines);
  return results;
}

// Every failed gate's name, for the messages.
std::string failures(const std::vector<perf::gate_result>& results) {
  std::string out;
  for (const auto& r : results)
    if (!r.pass) out += perf::format_line(r) + "\n";
  return out.empty() ? "none" : out;
}

// CPU time of one cpu=1 unit of the injection hook, in us: the least of
// fifteen timings of a thousand units on this thread (the loop needs no
// memory, so what makes a timing longer is interference, not the work).
double spin_unit_us() {
  std::vector<double> us;
  std::uint64_t x = 1;
  for (int rep = 0; rep < 15; ++rep) {
    timespec t0{}, t1{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    x = core::perf_inject::spin(1000 * core::perf_inject::spin_per_cpu_unit, x);
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    us.push_back(((t1.tv_sec - t0.tv_sec) * 1e9 + static_cast<double>(t1.tv_nsec - t0.tv_nsec)) / 1e3 / 1000);
  }
  volatile std::uint64_t sink = x;
  (void)sink;
  return *std::min_element(us.begin(), us.end());
}

std::string binary_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("the deterministic gates hold on this build against loadtest/baseline.json", "[perf][gate]") {
  const auto results = deterministic_gates({"head", perf::bin_path("gateway"), {}});
  INFO("failed:\n" << failures(results));
  // Every kind of gate ran, on both shapes.
  for (const char* name : {"allocations.1conn", "allocations.100conn", "syscalls.1conn.waits",
                           "syscalls.100conn.found-nothing", "syscalls.1conn.housekeeping", "instructions.1conn",
                           "instructions.100conn", "rss.idle-connection"}) {
    INFO(name);
    CHECK(std::any_of(results.begin(), results.end(), [&](const perf::gate_result& r) { return r.name == name; }));
  }
  CHECK(perf::all_pass(results));
}

TEST_CASE("the default gateway binary holds no injection hook and the test build does", "[perf][gate]") {
  const std::string plain = binary_text(perf::bin_path("gateway"));
  const std::string with_hook = binary_text(perf::bin_path("gateway_perf_inject"));
  REQUIRE(plain.size() > 100000);
  REQUIRE(with_hook.size() > 100000);
  // The hook reads this variable; without the hook the name is nowhere.
  CHECK(plain.find("GATEWAY_INJECT") == std::string::npos);
  CHECK(with_hook.find("GATEWAY_INJECT") != std::string::npos);
}

TEST_CASE("one extra system call per request fails the system-call gates and no other deterministic gate",
          "[perf][gate][inject]") {
  const auto results = deterministic_gates(hooked("syscall=1"));
  INFO("failed:\n" << failures(results));
  CHECK(perf::gate_failed(results, "syscalls.1conn.getppid"));
  CHECK(perf::gate_failed(results, "syscalls.100conn.getppid"));
  CHECK_FALSE(perf::gate_failed(results, "allocations."));
  CHECK_FALSE(perf::gate_failed(results, "instructions."));
  CHECK_FALSE(perf::gate_failed(results, "rss."));
  CHECK_FALSE(perf::gate_failed(results, "setup"));
}

TEST_CASE("one extra heap allocation per request fails the allocation gates and no other deterministic gate",
          "[perf][gate][inject]") {
  const auto results = deterministic_gates(hooked("alloc=1"));
  INFO("failed:\n" << failures(results));
  // One connection reads exactly 0.000 per request, so one more fails it.
  // At 100 overlapping connections a request allocates only what Asio's
  // two-block per-thread caches do not absorb (its proxy frame and pending
  // operations), which varies with the interleaving by about as much as one
  // allocation (docs/perf/gates.md): that shape no longer tells +1 apart.
  CHECK(perf::gate_failed(results, "allocations.1conn"));
  CHECK_FALSE(perf::gate_failed(results, "syscalls."));
  CHECK_FALSE(perf::gate_failed(results, "instructions."));
  CHECK_FALSE(perf::gate_failed(results, "rss."));
  CHECK_FALSE(perf::gate_failed(results, "setup"));
}

TEST_CASE("ten per cent more CPU work per request fails the instruction gates and no other deterministic gate",
          "[perf][gate][inject]") {
  const auto results = deterministic_gates(hooked("cpu=10"));
  INFO("failed:\n" << failures(results));
  CHECK(perf::gate_failed(results, "instructions.1conn"));
  CHECK(perf::gate_failed(results, "instructions.100conn"));
  CHECK_FALSE(perf::gate_failed(results, "allocations."));
  CHECK_FALSE(perf::gate_failed(results, "syscalls."));
  CHECK_FALSE(perf::gate_failed(results, "rss."));
  CHECK_FALSE(perf::gate_failed(results, "setup"));
}

TEST_CASE("side by side, the same build passes, about 10 % more CPU per request fails, and one extra system call "
          "or allocation per request passes",
          "[perf][gate][inject]") {
  const auto b = committed_baseline();
  // The base is the hooked binary with nothing injected, so each candidate
  // differs from it by its injection alone. First against itself: the gate
  // passes, and tells what a request costs now.
  const auto base = hooked("");
  perf::system_under_test again = base;
  again.label = "hook off, again";
  auto same = perf::run_side_by_side(base, {again}, b.side_by_side, std::cerr)[again.label];
  INFO("the same build:\n" << failures(same));
  CHECK(perf::all_pass(same));
  REQUIRE(same.size() == 2);
  const double request_us = same[1].reference;
  REQUIRE(request_us > 0);
  // What a request costs here moves with the machine's load (31 to 39 us
  // of CPU in this shape at load 6 to 16, up to 63 in the busiest minutes),
  // and a fixed amount of extra work is a smaller share of a dearer
  // request. So the injection is sized now: 10 % of the request's measured
  // CPU, in units of spin() timed now on this thread.
  const double unit_us = spin_unit_us();
  const unsigned units = static_cast<unsigned>(std::ceil(0.10 * request_us / unit_us));
  GATEWAY_REPORT("a request costs " << request_us << " us of CPU, a spin unit " << unit_us << " us: cpu=" << units);
  const std::string cpu = "cpu=" + std::to_string(units);
  const std::vector<perf::system_under_test> candidates{hooked(cpu), hooked("syscall=1"), hooked("alloc=1")};
  auto results = perf::run_side_by_side(base, candidates, b.side_by_side, std::cerr);
  for (const auto& c : candidates) {
    std::string lines;
    for (const auto& r : results[c.label]) lines += perf::format_line(r) + "\n";
    GATEWAY_REPORT("side by side, " << c.label << " against the hook off:\n" << lines);
  }
  INFO(cpu << ":\n" << failures(results[cpu]));
  CHECK(perf::gate_failed(results[cpu], "side-by-side.cpu-per-request"));
  CHECK_FALSE(perf::gate_failed(results[cpu], "side-by-side.setup"));
  for (const char* label : {"syscall=1", "alloc=1"}) {
    INFO(label << ":\n" << failures(results[label]));
    REQUIRE(results[label].size() >= 2);
    CHECK(perf::all_pass(results[label]));
  }
}

TEST_CASE("the side-by-side rule passes only a candidate shown to be within the limit", "[perf][gate]") {
  const auto stats = [](std::vector<double> r) { return perf::bootstrap_median(r, 0.9, 4000); };
  // Equal builds: ratios around 1.
  const auto same = stats({0.98, 1.01, 1.02, 0.99, 1.00, 1.03, 0.97});
  CHECK(same.median == Approx(1.00));
  CHECK(same.low <= 1.0);
  CHECK(same.high >= 1.0);
  CHECK(same.low >= 0.97);
  CHECK(same.high <= 1.03);
  CHECK_FALSE(perf::side_by_side_fails(same, 1.10, false));
  CHECK_FALSE(perf::side_by_side_fails(same, 0.90, true));
  CHECK_FALSE(perf::side_by_side_undecided(same, 1.10));
  // 5 % more CPU per request, measured tightly: within the limit.
  CHECK_FALSE(perf::side_by_side_fails(stats({1.03, 1.06, 1.05, 1.04, 1.07, 1.05}), 1.10, false));
  // 9 % more, its interval reaching past 10 %: not shown to be within.
  const auto nine = stats({1.08, 1.14, 1.03, 1.06, 1.07, 1.11, 1.09, 1.09, 1.10, 1.34});
  CHECK(nine.high > 1.10);
  CHECK(perf::side_by_side_fails(nine, 1.10, false));
  // 15 % less throughput.
  CHECK(perf::side_by_side_fails(stats({0.84, 0.86, 0.85, 0.83, 0.87}), 0.90, true));
  // Centred on 1 but too noisy to show anything: fails, and more rounds
  // are asked for while that is so.
  const auto noisy = stats({0.80, 1.25, 0.95, 1.10, 1.00, 0.85, 1.20});
  CHECK(perf::side_by_side_undecided(noisy, 1.10));
  CHECK(perf::side_by_side_fails(noisy, 1.10, false));
  // No figures at all fail.
  CHECK(perf::side_by_side_fails(stats({}), 1.10, false));
  CHECK(perf::side_by_side_undecided(stats({}), 1.10));
}

TEST_CASE("the gate tools' outputs are read as perf, strace and callgrind write them", "[perf][gate]") {
  const auto perf_counts = perf::parse_perf_trace_summary(
      "\n Summary of events:\n\n gateway (18945), 17166 events, 90.0%\n\n"
      "   syscall            calls  errors  total       min       avg       max       stddev\n"
      "                                     (msec)    (msec)    (msec)    (msec)        (%)\n"
      "   --------------- --------  ------ -------- --------- --------- ---------     ------\n"
      "   epoll_wait          4000      0    66.701     0.000     0.017     4.990     18.59%\n"
      "   recvfrom            2530    530     3.342     0.001     0.001     0.071      2.79%\n\n\n"
      " gateway (18946), 12 events, 10.0%\n\n"
      "   syscall            calls  errors  total       min       avg       max       stddev\n"
      "   --------------- --------  ------ -------- --------- --------- ---------     ------\n"
      "   recvfrom               6      2     0.010     0.001     0.001     0.002      2.00%\n\n");
  REQUIRE(perf_counts.size() == 2);
  CHECK(perf_counts.at("epoll_wait").calls == 4000);
  CHECK(perf_counts.at("epoll_wait").errors == 0);
  CHECK(perf_counts.at("recvfrom").calls == 2536);
  CHECK(perf_counts.at("recvfrom").errors == 532);
  CHECK(perf::parse_perf_count("25521340,,instructions:u,1,100.00,,\n", "instructions:u") == 25521340u);
  CHECK_FALSE(perf::parse_perf_count("<not supported>,,instructions:u,0,100.00,,\n", "instructions:u"));

  const auto strace = perf::parse_strace_summary(
      "% time     seconds  usecs/call     calls    errors syscall\n"
      "------ ----------- ----------- --------- --------- ----------------\n"
      " 60.00    0.006000           1      3502      1502 recvfrom\n"
      " 40.00    0.004000           2      2000           sendmsg\n"
      "------ ----------- ----------- --------- --------- ----------------\n"
      "100.00    0.010000           1      5502      1502 total\n");
  REQUIRE(strace.size() == 2);
  CHECK(strace.at("recvfrom").calls == 3502);
  CHECK(strace.at("recvfrom").errors == 1502);
  CHECK(strace.at("sendmsg").errors == 0);

  CHECK(perf::parse_callgrind_summary("version: 1\nevents: Ir\nsummary: 51059665\ntotals: 51100000\n") == 51059665u);

  // Successful calls are exact kinds; epoll_wait, failed reads and the
  // housekeeping kinds are loose groups; other failures are exact.
  const auto rates = perf::classify_syscalls({{"recvfrom", {3502, 1502}}, {"sendmsg", {2000, 0}},
                                              {"epoll_wait", {4000, 0}}, {"getppid", {1000, 0}},
                                              {"futex", {20, 3}}, {"ioctl", {10, 10}}},
                                             1000);
  CHECK(rates.exact.at("recvfrom") == Approx(2.0));
  CHECK(rates.exact.at("sendmsg") == Approx(2.0));
  CHECK(rates.exact.at("getppid") == Approx(1.0));
  CHECK(rates.exact.count("epoll_wait") == 0);
  CHECK(rates.exact.count("futex") == 0);
  CHECK(rates.exact.count("ioctl") == 0);
  CHECK(rates.exact.at("ioctl failed") == Approx(0.01));
  CHECK(rates.loose.at("waits") == Approx(4.0));
  CHECK(rates.loose.at("found-nothing") == Approx(1.502));
  CHECK(rates.loose.at("housekeeping") == Approx(0.02));
}

TEST_CASE("the baseline file survives a rewrite, and a gate beyond its limit fails with its name",
          "[perf][gate]") {
  auto b = committed_baseline();
  std::string error;
  perf::temp_dir dir;
  const std::string path = dir.file("baseline.json");
  {
    std::ofstream out(path, std::ios::binary);
    out << perf::baseline_json(b);
  }
  const auto again = perf::read_baseline(path, error);
  INFO(error);
  REQUIRE(again);
  CHECK(perf::baseline_json(*again) == perf::baseline_json(b));

  perf::deterministic_measurement m;
  m.syscall_tool = "perf";
  m.instruction_tool = "callgrind";
  m.one.requests = m.many.requests = 1000;
  m.one.allocations = 1.0;
  m.many.allocations = 0.0;
  m.one.syscalls = perf::syscall_counts{{"sendmsg", {2000, 0}}, {"getppid", {1000, 0}}};
  m.many.syscalls = perf::syscall_counts{{"sendmsg", {2000, 0}}};
  m.one.instruction_requests = m.many.instruction_requests = 100;
  m.one.instructions = 100 * 20000;
  m.many.instructions = 100 * 20000;
  m.rss_per_connection = 5000;
  b.one = b.many = {};
  b.one.allocations = b.many.allocations = 0.0;
  b.one.syscalls_exact = b.many.syscalls_exact = {{"sendmsg", 2.0}};
  b.one.syscalls_loose = b.many.syscalls_loose = {{"perf", {{"waits", 0}, {"found-nothing", 0}, {"housekeeping", 0}}}};
  b.one.instructions = {{"callgrind", 18000}};
  b.many.instructions = {{"callgrind", 20000}};
  b.rss_per_connection = 5000;
  const auto results = perf::judge_deterministic(m, b, perf::gate_selection{true, true, true, true, false});
  INFO(failures(results));
  CHECK(perf::gate_failed(results, "allocations.1conn"));
  CHECK_FALSE(perf::gate_failed(results, "allocations.100conn"));
  CHECK(perf::gate_failed(results, "syscalls.1conn.getppid"));
  CHECK_FALSE(perf::gate_failed(results, "syscalls.1conn.sendmsg"));
  CHECK_FALSE(perf::gate_failed(results, "syscalls.100conn."));
  CHECK(perf::gate_failed(results, "instructions.1conn"));
  CHECK_FALSE(perf::gate_failed(results, "instructions.100conn"));
  CHECK_FALSE(perf::gate_failed(results, "rss.idle-connection"));
  CHECK_FALSE(perf::gate_failed(results, "setup"));
  // A tool the baseline has no figure for fails, saying so.
  m.instruction_tool = "perf";
  const auto other = perf::judge_deterministic(m, b, perf::gate_selection{false, false, true, false, false});
  REQUIRE_FALSE(other.empty());
  CHECK(perf::gate_failed(other, "instructions.100conn"));
  CHECK(other.back().note.find("no baseline") != std::string::npos);
  // The line a person reads.
  CHECK(perf::format_line({"syscalls.1conn.getppid", "successful calls per request", 1.0, 0.0, 0.05, false, "perf"}) ==
        "gate syscalls.1conn.getppid: measured 1.000, baseline 0.000, limit 0.050, FAIL "
        "(successful calls per request; perf)");
}
