// perf_gate: runs the performance gates (gate/gates.hpp) on one gateway
// build and prints one line per gate and a summary; scripts/perf-gate.sh
// builds what it needs and calls it. Exit status: 0 when every gate passes
// (or the baseline was rewritten), 1 when one fails, 2 on bad usage.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "tests/perf/gate/gates.hpp"

namespace {

constexpr const char* usage = R"(usage: perf_gate [options]
  --gateway BIN        the gateway executable to gate (default: this build's bin/gateway)
  --env NAME=VALUE     extra environment for it, e.g. GATEWAY_INJECT=cpu=10 (repeatable)
  --label NAME         its name in the output (default: head)
  --base-gateway BIN   the side-by-side base (default: --gateway without --env)
  --base-env NAME=VALUE, --base-label NAME (default: base)
  --baseline FILE      default: loadtest/baseline.json of this source tree
  --update-baseline    measure the deterministic gates 3 times and rewrite FILE with the medians
  --gates LIST         comma-separated subset of allocations,syscalls,instructions,rss,side-by-side
  --json FILE          write the report as JSON
  --markdown FILE      write the report as a Markdown table
  --repeat N           measure N times and print each gate's spread (min, median, max and every
                       value; with --json, all of them): the figures behind the tolerances
)";

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

// --repeat: every gate measured `runs` times, one line per gate with its
// spread, and (with a path) all values as JSON.
int spread(const gateway::perf::system_under_test& head, const gateway::perf::system_under_test& base,
           const gateway::perf::gate_baseline& baseline, const gateway::perf::gate_selection& which, unsigned runs,
           const std::string& json_path) {
  using namespace gateway::perf;
  std::map<std::string, std::vector<double>> values;
  std::map<std::string, unsigned> failures;
  std::vector<std::string> order;
  const auto note = [&](const std::vector<gate_result>& results) {
    for (const auto& r : results) {
      if (values.find(r.name) == values.end()) order.push_back(r.name);
      values[r.name].push_back(r.measured);
      if (!r.pass) ++failures[r.name];
      std::cerr << format_line(r) << "\n";
    }
  };
  for (unsigned run = 1; run <= runs; ++run) {
    if (which.allocations || which.syscalls || which.instructions || which.rss)
      note(judge_deterministic(measure_deterministic(head, baseline, which, std::cerr), baseline, which));
    if (which.side_by_side) note(run_side_by_side(base, {head}, baseline.side_by_side, std::cerr)[head.label]);
    std::cerr << "perf gate: run " << run << " of " << runs << " done\n";
  }
  std::string json = "{\n  \"runs\": " + std::to_string(runs) + ",\n  \"gates\": {";
  for (const auto& name : order) {
    std::vector<double> v = values[name];
    std::vector<double> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    const auto text = [](double x) {
      char buf[32];
      std::snprintf(buf, sizeof buf, std::fabs(x) >= 1000 ? "%.0f" : "%.3f", x);
      return std::string(buf);
    };
    std::string all;
    for (double x : v) {
      if (!all.empty()) all += ' ';
      all += text(x);
    }
    std::cout << "spread " << name << ": min " << text(sorted.front()) << ", median "
              << text(sorted[sorted.size() / 2]) << ", max " << text(sorted.back()) << ", range "
              << text(sorted.back() - sorted.front()) << ", failed " << failures[name] << " of " << v.size() << " ("
              << all << ")\n";
    json += name == order.front() ? "\n    \"" : ",\n    \"";
    json += name;
    json += "\": [";
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i > 0) json += ", ";
      json += std::isfinite(v[i]) ? text(v[i]) : "null";
    }
    json += "]";
  }
  json += "\n  }\n}\n";
  if (!json_path.empty() && !write_file(json_path, json)) std::fprintf(stderr, "perf_gate: cannot write %s\n", json_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace gateway::perf;
  system_under_test head{"head", bin_path("gateway"), {}};
  system_under_test base{"base", "", {}};
  std::string baseline_path = source_path("loadtest/baseline.json");
  std::string json_path, markdown_path;
  bool update = false;
  unsigned repeat = 0;
  gate_selection which;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "perf_gate: %s needs a value\n%s", a.c_str(), usage);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--gateway") head.binary = value();
    else if (a == "--env") head.env.push_back(value());
    else if (a == "--label") head.label = value();
    else if (a == "--base-gateway") base.binary = value();
    else if (a == "--base-env") base.env.push_back(value());
    else if (a == "--base-label") base.label = value();
    else if (a == "--baseline") baseline_path = value();
    else if (a == "--update-baseline") update = true;
    else if (a == "--json") json_path = value();
    else if (a == "--markdown") markdown_path = value();
    else if (a == "--repeat") repeat = static_cast<unsigned>(std::strtoul(value().c_str(), nullptr, 10));
    else if (a == "--gates") {
      const auto s = parse_gate_selection(value());
      if (!s) {
        std::fprintf(stderr, "perf_gate: unknown gate in --gates\n%s", usage);
        return 2;
      }
      which = *s;
    } else if (a == "-h" || a == "--help") {
      std::fputs(usage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "perf_gate: unknown option %s\n%s", a.c_str(), usage);
      return 2;
    }
  }
  if (base.binary.empty()) base.binary = head.binary;
  if (update && !head.env.empty()) {
    std::fprintf(stderr, "perf_gate: --update-baseline with --env would record an injected build; refused\n");
    return 2;
  }
  std::string error;
  auto baseline = read_baseline(baseline_path, error);
  if (!baseline) {
    std::fprintf(stderr, "perf_gate: %s\n", error.c_str());
    return 2;
  }

  if (repeat > 0) return spread(head, base, *baseline, which, repeat, json_path);

  std::vector<gate_result> results;
  std::vector<deterministic_measurement> measured;
  if (which.allocations || which.syscalls || which.instructions || which.rss) {
    for (unsigned run = 0; run < (update ? baseline_runs : 1); ++run)
      measured.push_back(measure_deterministic(head, *baseline, which, std::cerr));
    results = judge_deterministic(measured.front(), *baseline, which);
    if (!measured.front().alloc_traces.empty())
      std::cerr << "allocations traced in the first window:\n" << measured.front().alloc_traces;
  }
  if (which.side_by_side) {
    auto sbs = run_side_by_side(base, {head}, baseline->side_by_side, std::cerr);
    for (auto& r : sbs[head.label]) results.push_back(std::move(r));
  }
  for (const auto& r : results) std::cout << format_line(r) << "\n";
  std::size_t failed = 0;
  for (const auto& r : results) failed += r.pass ? 0 : 1;
  const std::string title = "perf gates, " + head.label + (which.side_by_side ? " against " + base.label : "");
  std::cout << "perf gate summary: " << results.size() - failed << " of " << results.size() << " gates pass"
            << (failed > 0 ? ", " + std::to_string(failed) + " FAIL" : "") << " (" << title << ")\n";
  if (!json_path.empty() && !write_file(json_path, format_report_json(results, head.label, base.label)))
    std::fprintf(stderr, "perf_gate: cannot write %s\n", json_path.c_str());
  if (!markdown_path.empty() && !write_file(markdown_path, format_markdown(results, title)))
    std::fprintf(stderr, "perf_gate: cannot write %s\n", markdown_path.c_str());
  if (update) {
    const bool problems = std::any_of(measured.begin(), measured.end(),
                                      [](const deterministic_measurement& m) { return !m.problems.empty(); });
    if (problems) {
      std::fprintf(stderr, "perf_gate: the measurement had problems; %s left as it was\n", baseline_path.c_str());
      return 1;
    }
    update_baseline(*baseline, measured);
    if (!write_file(baseline_path, baseline_json(*baseline))) {
      std::fprintf(stderr, "perf_gate: cannot write %s\n", baseline_path.c_str());
      return 1;
    }
    std::cout << "perf gate: baseline rewritten: " << baseline_path << "\n";
    return 0;
  }
  return failed == 0 ? 0 : 1;
}
