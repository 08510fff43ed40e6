#include "loadtest/src/thresholds.hpp"

#include <catch2/catch.hpp>

#include "loadtest/src/options.hpp"

using namespace loadtest;

namespace {

gateway::json::value report(const char* text) { return gateway::json::parse(text).value(); }

const char* sample =
    R"({"schema_version": 1, "rps": 12000.5, "requests": 24001, "ok": 24000, "dropped": 0,
        "errors": {"total": 1, "connect": 0, "write": 0, "read": 0, "parse": 0, "timeout": 1, "status": 0},
        "latency_ms": {"p50": 0.8, "p90": 2.0, "p99": 12.5, "p999": 40.0, "max": 73.2, "mean": 1.1, "min": 0.1},
        "target": {"cpu_pct": 42.0, "cpu_us_per_request": 35.0, "rss_peak_bytes": 52428800,
                   "rss_end_bytes": 20971520, "settle_s": 2.5}})";

threshold parsed(const char* text) {
  std::string error;
  const auto t = parse_threshold(text, error);
  INFO(text << ": " << error);
  REQUIRE(t);
  return *t;
}

std::string error_of(const char* text) {
  std::string error;
  const auto t = parse_threshold(text, error);
  CHECK_FALSE(t);
  return error;
}

}  // namespace

TEST_CASE("loadtest thresholds parse a metric, a comparison and a value in the metric's units",
          "[unit][loadtest]") {
  const auto p99 = parsed("p99>50ms");
  CHECK(p99.metric == "p99");
  CHECK(p99.op == comparison::greater);
  CHECK(p99.value == Approx(50.0));
  CHECK(parsed(" p99 >= 0.05s ").value == Approx(50.0));
  CHECK(parsed("p50<=250us").value == Approx(0.25));
  CHECK(parsed("max > 2s").value == Approx(2000.0));
  CHECK(parsed("errors>0").value == 0.0);
  CHECK(parsed("rps<10000").op == comparison::less);
  CHECK(parsed("rps < 10000 req/s").value == Approx(10000.0));
  CHECK(parsed("error_rate>0.5%").value == Approx(0.5));
  CHECK(parsed("cpu>70").value == Approx(70.0));
  CHECK(parsed("rss_peak>500MiB").value == Approx(500.0 * 1024 * 1024));
  CHECK(parsed("rss_end>=64k").value == Approx(64000.0));
  CHECK(parsed("errors.timeout!=0").op == comparison::not_equal);
  CHECK(parsed("dropped==0").op == comparison::equal);
  CHECK(parsed("cpu_per_request>40us").value == Approx(0.04));
}

TEST_CASE("loadtest thresholds refuse bad conditions with a message that says what to write",
          "[unit][loadtest]") {
  CHECK(error_of("p98>50ms").find("unknown metric 'p98'") != std::string::npos);
  CHECK(error_of("p98>50ms").find("p99") != std::string::npos);  // lists the metrics
  CHECK(error_of("p99>50").find("give a unit") != std::string::npos);
  CHECK(error_of("p99>50MiB").find("is a time") != std::string::npos);
  CHECK(error_of("rss_peak>50ms").find("is a size") != std::string::npos);
  CHECK(error_of("errors>1ms").find("plain number") != std::string::npos);
  CHECK(error_of("p99 50ms").find("expected one of") != std::string::npos);
  CHECK(error_of("p99=>50ms").find("expected one of") != std::string::npos);
  CHECK(error_of("p99>").find("expected a number") != std::string::npos);
  CHECK(error_of("p99>-5ms").find("expected a number") != std::string::npos);
  CHECK(error_of(">50ms").find("unknown metric") != std::string::npos);
  CHECK(error_of("").find("unknown metric") != std::string::npos);
}

TEST_CASE("loadtest thresholds evaluate against a report and say what they saw", "[unit][loadtest]") {
  const auto r = report(sample);
  const auto p99 = evaluate(parsed("p99>50ms"), r);
  CHECK_FALSE(p99.failed);
  CHECK(p99.measured == Approx(12.5));
  CHECK(evaluate(parsed("p99>10ms"), r).failed);
  CHECK(evaluate(parsed("p99>10ms"), r).message == "p99>10ms: p99 is 12.500 ms, which is > 10.000 ms");
  CHECK(evaluate(parsed("errors>0"), r).failed);
  CHECK(evaluate(parsed("errors>0"), r).message == "errors>0: errors is 1, which is > 0");
  CHECK_FALSE(evaluate(parsed("errors.connect>0"), r).failed);
  CHECK(evaluate(parsed("errors.timeout>=1"), r).failed);
  CHECK(evaluate(parsed("rps<20000"), r).failed);
  CHECK_FALSE(evaluate(parsed("rps<10000"), r).failed);
  CHECK(evaluate(parsed("error_rate>0.001%"), r).failed);  // 1 of 24,002
  CHECK_FALSE(evaluate(parsed("error_rate>0.01%"), r).failed);
  CHECK(evaluate(parsed("cpu>40"), r).failed);
  CHECK_FALSE(evaluate(parsed("cpu_per_request>40us"), r).failed);
  CHECK(evaluate(parsed("rss_peak>=50MiB"), r).failed);
  CHECK_FALSE(evaluate(parsed("settle>3s"), r).failed);
  CHECK(evaluate(parsed("dropped!=0"), r).failed == false);
  CHECK(evaluate(parsed("dropped==0"), r).failed);
  // A figure the report does not have fails, saying why.
  const auto no_pid = evaluate(parsed("cpu>70"), report(R"({"rps": 1, "target": null})"));
  CHECK(no_pid.failed);
  CHECK(no_pid.message.find("needs --pid") != std::string::npos);
}

TEST_CASE("loadtest compares a report with a baseline in each metric's bad direction", "[unit][loadtest]") {
  const auto base = report(R"({"rps": 10000, "latency_ms": {"p50": 1.0, "p99": 10.0}, "errors": {"total": 0}})");
  const auto same = report(R"({"rps": 9500, "latency_ms": {"p50": 0.5, "p99": 10.9}, "errors": {"total": 3}})");
  const auto worse = report(R"({"rps": 8900, "latency_ms": {"p50": 1.0, "p99": 11.5}, "errors": {"total": 0}})");
  const std::vector<std::string> metrics{"rps", "p50", "p99"};
  for (const auto& c : compare_to_baseline(same, base, metrics, 0.10)) {
    INFO(c.message);
    CHECK_FALSE(c.failed);
  }
  const auto w = compare_to_baseline(worse, base, metrics, 0.10);
  REQUIRE(w.size() == 3);
  CHECK(w[0].failed);  // 11 % fewer requests per second
  CHECK(w[0].message == "regression:rps: 8900 req/s against 10000 req/s (-11.0 %, worse by more than 10.0 %)");
  CHECK_FALSE(w[1].failed);
  CHECK(w[2].failed);  // p99 15 % higher
  // Better is never a regression, however large.
  CHECK_FALSE(compare_to_baseline(base, worse, {"rps", "p99"}, 0.01)[0].failed);
  // Zero in the baseline: no relative change; missing: fails.
  CHECK_FALSE(compare_to_baseline(same, base, {"errors"}, 0.10)[0].failed);
  const auto missing = compare_to_baseline(same, base, {"cpu"}, 0.10);
  CHECK(missing[0].failed);
  CHECK(missing[0].message.find("missing") != std::string::npos);
}

TEST_CASE("loadtest takes --fail-if (repeatable), --baseline and --max-regression on the command line",
          "[unit][loadtest]") {
  std::vector<std::string> args{"loadtest", "--url", "http://127.0.0.1:8080/", "--fail-if", "p99>50ms",
                                "--fail-if=errors>0", "--baseline", "old.json", "--max-regression", "5%",
                                "--regression-metrics", "rps,p50"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  loadtest_options o;
  bool help = false;
  const auto error = parse_command_line(static_cast<int>(argv.size()), argv.data(), o, help);
  INFO(error.value_or(""));
  REQUIRE_FALSE(error);
  CHECK(o.fail_if == std::vector<std::string>{"p99>50ms", "errors>0"});
  CHECK(o.baseline_path == "old.json");
  CHECK(o.max_regression == Approx(0.05));
  CHECK(o.regression_metrics == std::vector<std::string>{"rps", "p50"});

  const auto bad = [](std::vector<std::string> extra) {
    std::vector<std::string> a{"loadtest", "--url", "http://127.0.0.1:8080/"};
    a.insert(a.end(), extra.begin(), extra.end());
    std::vector<char*> v;
    for (auto& x : a) v.push_back(x.data());
    loadtest_options opts;
    bool h = false;
    return parse_command_line(static_cast<int>(v.size()), v.data(), opts, h).value_or("");
  };
  CHECK(bad({"--fail-if", "p99>50"}).find("give a unit") != std::string::npos);
  CHECK(bad({"--max-regression", "0%"}).find("max-regression") != std::string::npos);
  CHECK(bad({"--max-regression", "ten"}).find("max-regression") != std::string::npos);
  CHECK(bad({"--regression-metrics", "rps,p98"}).find("p98") != std::string::npos);
  // Scenario files take the same keys.
  loadtest_options s;
  CHECK_FALSE(apply_scenario_text("fail_if = p99>=20ms\nfail-if = rps<100\n", s));
  CHECK(s.fail_if == std::vector<std::string>{"p99>=20ms", "rps<100"});
}

TEST_CASE("loadtest regression limits are percentages", "[unit][loadtest]") {
  CHECK(parse_percent("10%") == Approx(0.10));
  CHECK(parse_percent("10") == Approx(0.10));
  CHECK(parse_percent(" 2.5 % ") == Approx(0.025));
  CHECK_FALSE(parse_percent("0%"));
  CHECK_FALSE(parse_percent("-5%"));
  CHECK_FALSE(parse_percent("5x"));
  CHECK_FALSE(parse_percent("1000%"));
}
