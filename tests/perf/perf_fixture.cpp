#include "tests/perf/perf_fixture.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace gateway::perf {

using namespace std::chrono_literals;

std::string bin_path(std::string_view name) { return std::string(GATEWAY_BIN_DIR) + "/" + std::string(name); }

std::string source_path(std::string_view relative) {
  return std::string(GATEWAY_SOURCE_DIR) + "/" + std::string(relative);
}

void raise_open_file_limit() noexcept {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

started start_echo_backend(const std::vector<std::string>& extra) {
  std::vector<std::string> argv{bin_path("echo_backend"), "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  started s;
  s.proc = std::make_unique<child_process>(argv);
  const auto line = s.proc->wait_for_line("listening on", false, 10s);
  if (line) s.port = port_after_listening_on(*line);
  if (s.port == 0)
    throw std::runtime_error("echo_backend did not announce its port; stderr: " + s.proc->err());
  return s;
}

std::vector<std::string> gateway_flags(unsigned backend_port) {
  return {"--listen",     "127.0.0.1:0",
          "--backend",    "http://127.0.0.1:" + std::to_string(backend_port),
          "--api-key",    std::string(perf_api_key),
          "--access-log", "off",
          "--rate-limit", "100000000/min"};
}

started start_gateway(const std::vector<std::string>& flags) { return start_gateway_binary(bin_path("gateway"), flags); }

started start_gateway_binary(const std::string& binary, const std::vector<std::string>& flags,
                             const std::vector<std::string>& env, const std::vector<std::string>& prefix,
                             std::chrono::seconds limit) {
  std::vector<std::string> argv = prefix;
  argv.push_back(binary);
  argv.insert(argv.end(), flags.begin(), flags.end());
  // The gates' budgets and baselines are the epoll backend's, so this
  // build's gateway (which would take io_uring by default where the kernel
  // allows it) runs on epoll here; loadtest/uring_ab.sh compares the two. A
  // base binary built from another commit may not know the flag.
  std::error_code ec;
  if (std::filesystem::equivalent(std::filesystem::path(binary).parent_path().empty()
                                      ? std::filesystem::path(".")
                                      : std::filesystem::path(binary).parent_path(),
                                  GATEWAY_BIN_DIR, ec))
    argv.insert(argv.end(), {"--io-backend", "epoll"});
  started s;
  s.proc = std::make_unique<child_process>(argv, env);
  const auto line = s.proc->wait_for_line("gateway: listening on", true, limit);
  if (line) s.port = port_after_listening_on(*line);
  if (s.port == 0) throw std::runtime_error("the gateway did not announce its port; stderr: " + s.proc->err());
  return s;
}

load_outcome run_loadtest(std::vector<std::string> args, const temp_dir& dir, std::string_view name,
                          std::chrono::seconds limit) {
  const std::string json_path = dir.file(std::string(name) + ".json");
  std::vector<std::string> argv{bin_path("loadtest")};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--json", json_path, "--quiet"});
  child_process lt(argv);
  load_outcome r;
  r.exit_status = lt.wait_exit(std::chrono::duration_cast<std::chrono::milliseconds>(limit));
  r.output = lt.out() + lt.err();
  std::ifstream in(json_path, std::ios::binary);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = json::parse(text.str());
    if (parsed) r.report = std::move(parsed).value();
  }
  return r;
}

double number_at(const json::value& v, std::initializer_list<std::string_view> path) noexcept {
  const json::value* at = &v;
  for (const auto key : path) {
    at = at->find(key);
    if (at == nullptr) return std::numeric_limits<double>::quiet_NaN();
  }
  return at->is_number() ? at->as_double() : std::numeric_limits<double>::quiet_NaN();
}

namespace {

std::string fmt(const char* format, double a, double b = 0) {
  char buf[200];
  std::snprintf(buf, sizeof buf, format, a, b);
  return buf;
}

}  // namespace

std::vector<std::string> open_loop_gate_failures(const json::value& report, const open_loop_limits& limits) {
  std::vector<std::string> failures;
  if (!report.is_object()) {
    failures.emplace_back("report: loadtest wrote no readable JSON report");
    return failures;
  }
  // A NaN (a missing field) fails every comparison below that is written as
  // "!(x <= bound)".
  const double p99 = number_at(report, {"latency_ms", "p99"});
  if (!(p99 <= limits.p99_ms)) failures.push_back(fmt("p99: %.1f ms, over the %.0f ms bound", p99, limits.p99_ms));

  const double cpu = number_at(report, {"target", "cpu_pct"});
  if (!(cpu <= limits.cpu_pct))
    failures.push_back(fmt("cpu: gateway used %.1f %% of one core, over %.0f %%", cpu, limits.cpu_pct));

  const double peak = number_at(report, {"target", "rss_peak_bytes"});
  if (!(peak <= limits.rss_peak_bytes))
    failures.push_back(fmt("rss-peak: %.1f MiB, over %.0f MiB", peak / 1048576.0, limits.rss_peak_bytes / 1048576.0));

  const json::value* target = report.find("target");
  const json::value* settled = target != nullptr ? target->find("settled") : nullptr;
  const double settle = number_at(report, {"target", "settle_s"});
  if (settled == nullptr || !settled->as_bool() || !(settle <= limits.settle_s))
    failures.push_back(fmt("rss-settle: RSS not back within tolerance of its baseline (%.1f s, bound %.0f s)", settle,
                           limits.settle_s) +
                       fmt(", end %.1f MiB vs baseline %.1f MiB", number_at(report, {"target", "rss_end_bytes"}) / 1048576.0,
                           number_at(report, {"target", "rss_baseline_bytes"}) / 1048576.0));

  const double errors = number_at(report, {"errors", "total"});
  if (!(errors == 0)) failures.push_back(fmt("errors: %.0f failed requests", errors));
  const double dropped = number_at(report, {"dropped"});
  if (!(dropped == 0)) failures.push_back(fmt("dropped: %.0f intended requests never sent", dropped));

  // Every answer must be a 200: the gate scenario expects nothing else.
  if (const json::value* statuses = report.find("status_counts"); statuses != nullptr && statuses->is_object()) {
    for (const auto& m : statuses->members())
      if (m.key != "200") failures.push_back("status: " + std::to_string(static_cast<long long>(m.value.as_double())) + " answers with status " + m.key);
  } else {
    failures.emplace_back("status: no status_counts in the report");
  }

  const double rate = number_at(report, {"rate"});
  const double duration = number_at(report, {"duration_s"});
  const double requests = number_at(report, {"requests"});
  if (!(rate > 0 && duration > 0 && requests >= limits.min_delivered * rate * duration))
    failures.push_back(fmt("volume: %.0f requests measured, expected about %.0f", requests, rate * duration));
  return failures;
}

bool has_gate(const std::vector<std::string>& failures, std::string_view name) {
  for (const auto& f : failures)
    if (f.size() > name.size() && f.compare(0, name.size(), name) == 0 && f[name.size()] == ':') return true;
  return false;
}

std::optional<live_counts> parse_stopped_line(std::string_view line) noexcept {
  live_counts c;
  const std::string text(line);
  if (std::sscanf(text.c_str(), "gateway: stopped (connections %lld, coroutines %lld, threads %lld)", &c.connections,
                  &c.coroutines, &c.threads) != 3)
    return std::nullopt;
  return c;
}

std::vector<std::string> shutdown_gate_failures(child_process& gateway, std::chrono::seconds limit) {
  std::vector<std::string> failures;
  gateway.signal(SIGTERM);
  const auto status = gateway.wait_exit(std::chrono::duration_cast<std::chrono::milliseconds>(limit));
  if (!status) {
    failures.push_back("shutdown: still running " + std::to_string(limit.count()) + " s after SIGTERM");
    return failures;
  }
  if (*status != 0) failures.push_back("shutdown: exit status " + std::to_string(*status));
  std::string_view err = gateway.err();
  while (!err.empty() && err.back() == '\n') err.remove_suffix(1);
  const std::size_t nl = err.rfind('\n');
  const std::string_view last = nl == std::string_view::npos ? err : err.substr(nl + 1);
  const auto counts = parse_stopped_line(last);
  if (!counts)
    failures.push_back("shutdown: last stderr line is not the \"stopped\" line: " + std::string(last));
  else if (counts->connections != 0 || counts->coroutines != 0 || counts->threads != 0)
    failures.push_back("shutdown: still alive after stop: " + std::string(last));
  return failures;
}

std::string summarize(const json::value& report) {
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "%.0f req/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms, errors %.0f, gateway CPU %.1f %% "
                "(%.1f us/request), RSS baseline %.1f MiB, peak %.1f MiB, end %.1f MiB, settle %.1f s, loadtest CPU "
                "%.1f us/request",
                number_at(report, {"rps"}), number_at(report, {"latency_ms", "p50"}),
                number_at(report, {"latency_ms", "p99"}), number_at(report, {"latency_ms", "p999"}),
                number_at(report, {"latency_ms", "max"}), number_at(report, {"errors", "total"}),
                number_at(report, {"target", "cpu_pct"}), number_at(report, {"target", "cpu_us_per_request"}),
                number_at(report, {"target", "rss_baseline_bytes"}) / 1048576.0,
                number_at(report, {"target", "rss_peak_bytes"}) / 1048576.0,
                number_at(report, {"target", "rss_end_bytes"}) / 1048576.0, number_at(report, {"target", "settle_s"}),
                number_at(report, {"loadtest_cpu_us_per_request"}));
  return buf;
}

std::string join(const std::vector<std::string>& messages) {
  std::string out;
  for (const auto& m : messages) {
    if (!out.empty()) out += "; ";
    out += m;
  }
  return out;
}

}  // namespace gateway::perf
