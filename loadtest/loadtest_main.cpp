// loadtest: an HTTP/1.1 load generator (closed or open loop) with a process
// sampler. See loadtest/src/load_runner.hpp for what is measured and how,
// loadtest/src/report.hpp for the report, and `loadtest --help`.
//
// The main thread only controls: it starts the workers, wakes every 250 ms to
// sample the target process and (every second) print progress, takes CPU
// readings at the measured window's edges, then waits for the target's RSS
// to settle. Exit status: 0 when every measured request succeeded and every
// check held, 1 when some requests failed or were dropped, 2 on bad options
// or set-up failure, 3 when a --fail-if or --baseline check failed (each is
// named on stderr).
#include "loadtest/src/load_runner.hpp"
#include "loadtest/src/options.hpp"
#include "loadtest/src/proc_sampler.hpp"
#include "loadtest/src/report.hpp"
#include "loadtest/src/request_templates.hpp"
#include "loadtest/src/thresholds.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

namespace {

volatile std::sig_atomic_t interrupted = 0;

extern "C" void on_signal(int) { interrupted = 1; }

void install_signal_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C ends the program at once
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

void raise_fd_limit(std::uint64_t wanted) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < wanted)
    std::fprintf(stderr, "loadtest: warning: open-file limit %llu is below the %llu this run needs\n",
                 static_cast<unsigned long long>(rl.rlim_cur), static_cast<unsigned long long>(wanted));
}

double own_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double seconds(loadtest::clock_type::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  using namespace loadtest;
  using std::chrono::milliseconds;

  loadtest_options options;
  bool help = false;
  if (auto error = parse_command_line(argc, argv, options, help)) {
    std::fprintf(stderr, "loadtest: %s\n", error->c_str());
    return 2;
  }
  if (help) {
    std::fwrite(usage_text().data(), 1, usage_text().size(), stdout);
    return 0;
  }
  // The baseline is read before the load, so a bad file costs no run.
  gateway::json::value baseline_report;
  if (!options.baseline_path.empty()) {
    std::ifstream in(options.baseline_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = gateway::json::parse(text.str());
    if (!in || !parsed || !parsed.value().is_object() || parsed.value().find("rps") == nullptr) {
      std::fprintf(stderr, "loadtest: --baseline %s is not a loadtest JSON report%s%s\n", options.baseline_path.c_str(),
                   parsed ? "" : ": ", parsed ? "" : parsed.error().message.c_str());
      return 2;
    }
    baseline_report = std::move(parsed).value();
  }
  raise_fd_limit(options.connections + 64ULL);
  install_signal_handlers();

  // Resolved once, before the load (DESIGN: no name lookups on the hot path).
  asio::ip::tcp::endpoint target;
  {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    std::error_code ec;
    const auto results = resolver.resolve(asio::ip::tcp::v4(), options.url.host, std::to_string(options.url.port), ec);
    if (ec || results.empty()) {
      std::fprintf(stderr, "loadtest: cannot resolve '%s': %s\n", options.url.host.c_str(), ec.message().c_str());
      return 2;
    }
    target = results.begin()->endpoint();
  }

  std::vector<request_template> templates;
  if (auto error = build_request_templates(options, templates)) {
    std::fprintf(stderr, "loadtest: %s\n", error->c_str());
    return 2;
  }

  std::optional<proc_sampler> sampler;
  target_report tr;
  proc_sample baseline;
  if (options.pid > 0) {
    sampler.emplace(options.pid);
    const auto s = sampler->sample();
    if (!s) {
      std::fprintf(stderr, "loadtest: cannot read /proc/%d (no such process?)\n", options.pid);
      return 2;
    }
    baseline = *s;
    tr.enabled = true;
    tr.pid = options.pid;
    tr.samples = 1;
    tr.rss_baseline_bytes = tr.rss_peak_bytes = tr.rss_end_bytes = s->rss_bytes;
    tr.rss_tolerance_bytes =
        options.rss_tolerance.value_or(std::max<std::uint64_t>(s->rss_bytes / 10, 8ULL * 1024 * 1024));
  }
  std::optional<proc_sample> last_sample = baseline;
  const auto take_sample = [&]() -> std::optional<proc_sample> {
    if (!sampler || !tr.alive) return std::nullopt;
    auto s = sampler->sample();
    if (!s) {
      tr.alive = false;
      return std::nullopt;
    }
    ++tr.samples;
    tr.rss_peak_bytes = std::max(tr.rss_peak_bytes, s->rss_bytes);
    tr.rss_end_bytes = s->rss_bytes;
    last_sample = s;
    return s;
  };

  load_runner runner(options, std::move(templates), target);
  runner.start();
  const run_plan plan = runner.plan();
  const auto never = clock_type::time_point::max();

  bool measuring = false;
  bool measured_done = false;
  clock_type::time_point window_start{}, window_end{}, stop_time = never;
  double cpu_self_start = 0, cpu_self_end = 0;
  std::uint64_t target_cpu_start = 0, target_cpu_end = 0;
  auto next_tick = plan.start + milliseconds(250);
  unsigned tick = 0;
  std::uint64_t last_responses = 0;
  auto last_progress = plan.start;

  const auto open_window = [&](clock_type::time_point now) {
    measuring = true;
    window_start = now;
    cpu_self_start = own_cpu_s();
    if (auto s = take_sample()) target_cpu_start = s->cpu_ns;
    else if (last_sample) target_cpu_start = last_sample->cpu_ns;
  };
  const auto close_window = [&](clock_type::time_point now) {
    measured_done = true;
    window_end = now;
    cpu_self_end = own_cpu_s();
    if (auto s = take_sample()) target_cpu_end = s->cpu_ns;
    else if (last_sample) target_cpu_end = last_sample->cpu_ns;
    if (!measuring) {  // ended during warm-up: an empty window
      window_start = now;
      cpu_self_start = cpu_self_end;
      target_cpu_start = target_cpu_end;
    }
  };

  // Bounded: the workers end by the hard deadline (measure_end + timeout).
  while (!runner.finished()) {
    auto wake = next_tick;
    if (!measuring) wake = std::min(wake, plan.measure_start);
    if (!measured_done) wake = std::min(wake, plan.measure_end);
    std::this_thread::sleep_until(wake);
    const auto now = clock_type::now();
    if (interrupted && stop_time == never) {
      stop_time = now;
      runner.request_stop();
    }
    if (!measuring && !measured_done && now >= plan.measure_start && stop_time == never) open_window(now);
    if (!measured_done && (now >= plan.measure_end || stop_time != never || runner.request_limit_reached()))
      close_window(std::min(now, plan.measure_end));
    if (now >= next_tick) {
      next_tick += milliseconds(250);
      if (measuring || !measured_done) take_sample();
      if (++tick % 4 == 0 && !options.quiet) {
        const run_stats snap = runner.snapshot();
        const double dt = seconds(now - last_progress);
        const double rps = dt > 0 ? static_cast<double>(snap.all_responses - last_responses) / dt : 0;
        last_responses = snap.all_responses;
        last_progress = now;
        const char* phase = now < plan.measure_start ? "warmup" : now < plan.measure_end ? "measure" : "drain";
        const std::string line = format_progress(seconds(now - plan.start), phase, rps, snap.error_total(),
                                                 static_cast<double>(snap.latency.value_at_percentile(99)) / 1e6,
                                                 snap.live_connections);
        std::fwrite(line.data(), 1, line.size(), stderr);
      }
    }
  }
  const run_stats stats = runner.join();
  if (!measured_done) close_window(std::min(clock_type::now(), plan.measure_end));
  const auto load_end = clock_type::now();

  // After the load: wait for the target's memory to come back (bounded by --settle-timeout).
  if (sampler && tr.alive) {
    for (;;) {
      const auto s = take_sample();
      const auto now = clock_type::now();
      tr.settle_s = seconds(now - load_end);
      if (!s) break;
      if (s->rss_bytes <= tr.rss_baseline_bytes + tr.rss_tolerance_bytes) {
        tr.settled = true;
        break;
      }
      if (now - load_end >= options.settle_timeout || interrupted) break;
      std::this_thread::sleep_for(milliseconds(250));
    }
  }

  run_report report;
  report.options = &options;
  report.stats = &stats;
  report.interrupted = stop_time != never;
  auto measure_end = window_end;
  if (runner.request_limit_reached() && stats.last_measured_completion > window_start)
    measure_end = std::min(measure_end, stats.last_measured_completion);
  report.measured_s = std::max(0.0, seconds(measure_end - window_start));
  report.loadtest_cpu_s = cpu_self_end - cpu_self_start;
  report.loadtest_cpu_total_s = own_cpu_s();
  if (tr.enabled) {
    tr.cpu_s = static_cast<double>(target_cpu_end - std::min(target_cpu_end, target_cpu_start)) / 1e9;
    const double window = seconds(window_end - window_start);
    tr.cpu_pct = window > 0 ? tr.cpu_s / window * 100.0 : 0.0;
    tr.cpu_us_per_request = stats.requests ? tr.cpu_s * 1e6 / static_cast<double>(stats.requests) : 0.0;
  }
  report.target = tr;

  // The checks read the report as its JSON says it, as they read a baseline.
  bool check_failed = false;
  if (!options.fail_if.empty() || !options.baseline_path.empty()) {
    const auto self = gateway::json::parse(format_json(report));
    const gateway::json::value doc = self ? self.value() : gateway::json::value();
    for (const auto& text : options.fail_if) {
      std::string error;
      if (const auto t = parse_threshold(text, error)) report.checks.push_back(evaluate(*t, doc));
    }
    if (!options.baseline_path.empty())
      for (auto& c : compare_to_baseline(doc, baseline_report, options.regression_metrics, options.max_regression))
        report.checks.push_back(std::move(c));
    for (const auto& c : report.checks) check_failed = check_failed || c.failed;
  }

  const std::string table = format_table(report);
  std::fwrite(table.data(), 1, table.size(), stdout);
  std::size_t held = 0;
  for (const auto& c : report.checks) {
    // stdout is flushed first, so the lines keep their order when both
    // streams go to one place.
    std::fflush(stdout);
    if (c.failed) std::fprintf(stderr, "loadtest: CHECK FAILED %s\n", c.message.c_str());
    else std::printf("check ok      %s\n", c.message.c_str());
    held += c.failed ? 0 : 1;
  }
  if (!report.checks.empty())
    std::printf("checks        %zu of %zu held\n", held, report.checks.size());
  std::fflush(stdout);
  if (!options.json_path.empty()) {
    const std::string json = format_json(report);
    std::FILE* f = std::fopen(options.json_path.c_str(), "w");
    bool written = f != nullptr && std::fwrite(json.data(), 1, json.size(), f) == json.size();
    if (f != nullptr && std::fclose(f) != 0) written = false;
    if (!written) {
      std::fprintf(stderr, "loadtest: cannot write %s\n", options.json_path.c_str());
      return 2;
    }
  }
  if (check_failed) return 3;
  return stats.error_total() > 0 || stats.dropped > 0 ? 1 : 0;
}
