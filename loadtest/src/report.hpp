#pragma once
// The load generator's final report: a table for people (stdout) and a JSON
// document for scripts (--json). JSON fields (all numbers unless noted):
//   schema_version (1; a field's meaning never changes within a version),
//   scenario (string), url (string), mode ("closed"|"open"), connections, threads,
//   rate (open loop, req/s), duration_s (the measured time actually run),
//   warmup_s, interrupted (bool), requests (measured, complete responses),
//   ok (requests with an expected status), errors {total, connect, write, read,
//   parse, timeout, status}, dropped, rps, latency_ms {p50, p90, p99, p999, max,
//   mean, min}, status_counts {"200": n, ...}, bytes_sent, bytes_received,
//   reconnects, stale_retries, loadtest_cpu_s (own CPU, measured window, getrusage),
//   loadtest_cpu_total_s, loadtest_cpu_us_per_request,
//   target: null without --pid, else {pid, alive (bool), samples,
//   rss_baseline_bytes, rss_peak_bytes, rss_end_bytes, rss_tolerance_bytes,
//   cpu_s, cpu_pct (of one core, measured window), cpu_us_per_request,
//   settle_s, settled (bool)},
//   checks: the --fail-if and --baseline checks (thresholds.hpp), each
//   {check (string), failed (bool), measured, reference, message (string)}.
#include "loadtest/src/load_runner.hpp"
#include "loadtest/src/options.hpp"
#include "loadtest/src/thresholds.hpp"

#include <cstdint>
#include <string>

namespace loadtest {

struct target_report {
  bool enabled = false;
  int pid = 0;
  bool alive = true;
  std::uint64_t samples = 0;
  std::uint64_t rss_baseline_bytes = 0;
  std::uint64_t rss_peak_bytes = 0;
  std::uint64_t rss_end_bytes = 0;
  std::uint64_t rss_tolerance_bytes = 0;
  double cpu_s = 0;
  double cpu_pct = 0;
  double cpu_us_per_request = 0;
  double settle_s = 0;
  bool settled = false;
};

struct run_report {
  const loadtest_options* options = nullptr;
  const run_stats* stats = nullptr;
  double measured_s = 0;
  bool interrupted = false;
  double loadtest_cpu_s = 0;
  double loadtest_cpu_total_s = 0;
  target_report target;
  std::vector<check_result> checks;
};

inline constexpr int report_schema_version = 1;

std::string format_table(const run_report& r);
std::string format_json(const run_report& r);

// One progress line: "[  3.0s measure] 51234 req/s  errors 0  p99 1.23 ms  conns 100".
std::string format_progress(double elapsed_s, const char* phase, double rps, std::uint64_t errors,
                            double p99_ms, std::uint32_t live_connections);

}  // namespace loadtest
