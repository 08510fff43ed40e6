#include "loadtest/src/report.hpp"

#include <cstdarg>
#include <cstdio>

namespace loadtest {
namespace {

void appendf(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string& out, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) out.append(buf, static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1);
}

double ms(std::uint64_t ns) { return static_cast<double>(ns) / 1e6; }
double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) appendf(out, "\\u%04x", static_cast<unsigned>(c));
        else out += c;
    }
  }
  out += '"';
}

double rps_of(const run_report& r) { return r.measured_s > 0 ? static_cast<double>(r.stats->requests) / r.measured_s : 0; }

std::uint64_t ok_of(const run_report& r) {
  const std::uint64_t bad = r.stats->errors_of(error_kind::status);
  return r.stats->requests > bad ? r.stats->requests - bad : 0;
}

}  // namespace

std::string format_progress(double elapsed_s, const char* phase, double rps, std::uint64_t errors, double p99_ms,
                            std::uint32_t live_connections) {
  std::string s;
  appendf(s, "[%6.1fs %-7s] %9.0f req/s  errors %llu  p99 %.2f ms  conns %u\n", elapsed_s, phase, rps,
          static_cast<unsigned long long>(errors), p99_ms, live_connections);
  return s;
}

std::string format_table(const run_report& r) {
  const loadtest_options& o = *r.options;
  const run_stats& s = *r.stats;
  const latency_histogram& h = s.latency;
  std::string t;
  appendf(t, "scenario      %s%s\n", o.scenario_name.c_str(), r.interrupted ? " (interrupted)" : "");
  appendf(t, "target        %s\n", o.url_text.c_str());
  if (o.rate > 0)
    appendf(t, "mode          open loop, %.0f req/s over %u connections, %u thread(s)\n", o.rate, o.connections, o.threads);
  else
    appendf(t, "mode          closed loop, %u connections, %u thread(s)\n", o.connections, o.threads);
  appendf(t, "measured      %.2f s (after %.2f s warm-up)\n", r.measured_s,
          std::chrono::duration<double>(o.warmup).count());
  appendf(t, "requests      %llu  (%.1f req/s)\n", static_cast<unsigned long long>(s.requests), rps_of(r));
  appendf(t, "ok            %llu\n", static_cast<unsigned long long>(ok_of(r)));
  appendf(t, "errors        %llu  (connect %llu, write %llu, read %llu, parse %llu, timeout %llu, status %llu)\n",
          static_cast<unsigned long long>(s.error_total()),
          static_cast<unsigned long long>(s.errors_of(error_kind::connect)),
          static_cast<unsigned long long>(s.errors_of(error_kind::write)),
          static_cast<unsigned long long>(s.errors_of(error_kind::read)),
          static_cast<unsigned long long>(s.errors_of(error_kind::parse)),
          static_cast<unsigned long long>(s.errors_of(error_kind::timeout)),
          static_cast<unsigned long long>(s.errors_of(error_kind::status)));
  if (o.rate > 0) appendf(t, "dropped       %llu  (intended but never sent)\n", static_cast<unsigned long long>(s.dropped));
  t += "statuses     ";
  bool any = false;
  for (std::size_t code = 0; code < s.status_counts.size(); ++code) {
    if (s.status_counts[code] == 0) continue;
    appendf(t, " %zu: %llu", code, static_cast<unsigned long long>(s.status_counts[code]));
    any = true;
  }
  t += any ? "\n" : " none\n";
  appendf(t, "latency (ms)  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
          ms(h.value_at_percentile(50)), ms(h.value_at_percentile(90)), ms(h.value_at_percentile(99)),
          ms(h.value_at_percentile(99.9)), ms(h.max()), h.mean() / 1e6);
  appendf(t, "traffic       sent %.1f MiB, received %.1f MiB, reconnects %llu, stale retries %llu\n",
          mib(s.bytes_sent), mib(s.bytes_received), static_cast<unsigned long long>(s.reconnects),
          static_cast<unsigned long long>(s.stale_retries));
  appendf(t, "loadtest CPU  %.2f s in the measured window (%.1f us/request), %.2f s in all\n", r.loadtest_cpu_s,
          s.requests ? r.loadtest_cpu_s * 1e6 / static_cast<double>(s.requests) : 0.0, r.loadtest_cpu_total_s);
  if (r.target.enabled) {
    const target_report& p = r.target;
    appendf(t, "target pid    %d%s, %llu samples\n", p.pid, p.alive ? "" : " (exited)",
            static_cast<unsigned long long>(p.samples));
    appendf(t, "target RSS    baseline %.1f MiB, peak %.1f MiB, end %.1f MiB\n", mib(p.rss_baseline_bytes),
            mib(p.rss_peak_bytes), mib(p.rss_end_bytes));
    appendf(t, "target CPU    %.2f s, %.1f %% of one core, %.1f us/request\n", p.cpu_s, p.cpu_pct, p.cpu_us_per_request);
    if (p.settled)
      appendf(t, "settle        back within %.1f MiB of baseline after %.2f s\n", mib(p.rss_tolerance_bytes), p.settle_s);
    else
      appendf(t, "settle        NOT back within %.1f MiB of baseline after %.2f s\n", mib(p.rss_tolerance_bytes),
              p.settle_s);
  }
  return t;
}

std::string format_json(const run_report& r) {
  const loadtest_options& o = *r.options;
  const run_stats& s = *r.stats;
  const latency_histogram& h = s.latency;
  std::string j = "{\n  \"schema_version\": " + std::to_string(report_schema_version) + ",\n  \"scenario\": ";
  append_json_string(j, o.scenario_name);
  j += ",\n  \"url\": ";
  append_json_string(j, o.url_text);
  appendf(j, ",\n  \"mode\": \"%s\",\n  \"connections\": %u,\n  \"threads\": %u,\n  \"rate\": %.3f", o.rate > 0 ? "open" : "closed",
          o.connections, o.threads, o.rate);
  appendf(j, ",\n  \"duration_s\": %.6f,\n  \"warmup_s\": %.6f,\n  \"interrupted\": %s", r.measured_s,
          std::chrono::duration<double>(o.warmup).count(), r.interrupted ? "true" : "false");
  appendf(j, ",\n  \"requests\": %llu,\n  \"ok\": %llu", static_cast<unsigned long long>(s.requests),
          static_cast<unsigned long long>(ok_of(r)));
  appendf(j, ",\n  \"errors\": {\"total\": %llu", static_cast<unsigned long long>(s.error_total()));
  for (std::size_t k = 0; k < error_kind_count; ++k)
    appendf(j, ", \"%s\": %llu", error_kind_name(static_cast<error_kind>(k)), static_cast<unsigned long long>(s.errors[k]));
  appendf(j, "},\n  \"dropped\": %llu,\n  \"rps\": %.3f", static_cast<unsigned long long>(s.dropped), rps_of(r));
  appendf(j,
          ",\n  \"latency_ms\": {\"p50\": %.6f, \"p90\": %.6f, \"p99\": %.6f, \"p999\": %.6f, \"max\": %.6f, \"mean\": %.6f, "
          "\"min\": %.6f}",
          ms(h.value_at_percentile(50)), ms(h.value_at_percentile(90)), ms(h.value_at_percentile(99)),
          ms(h.value_at_percentile(99.9)), ms(h.max()), h.mean() / 1e6, ms(h.min()));
  j += ",\n  \"status_counts\": {";
  bool first = true;
  for (std::size_t code = 0; code < s.status_counts.size(); ++code) {
    if (s.status_counts[code] == 0) continue;
    appendf(j, "%s\"%zu\": %llu", first ? "" : ", ", code, static_cast<unsigned long long>(s.status_counts[code]));
    first = false;
  }
  appendf(j, "},\n  \"bytes_sent\": %llu,\n  \"bytes_received\": %llu,\n  \"reconnects\": %llu,\n  \"stale_retries\": %llu",
          static_cast<unsigned long long>(s.bytes_sent), static_cast<unsigned long long>(s.bytes_received),
          static_cast<unsigned long long>(s.reconnects), static_cast<unsigned long long>(s.stale_retries));
  appendf(j, ",\n  \"loadtest_cpu_s\": %.6f,\n  \"loadtest_cpu_total_s\": %.6f,\n  \"loadtest_cpu_us_per_request\": %.3f",
          r.loadtest_cpu_s, r.loadtest_cpu_total_s,
          s.requests ? r.loadtest_cpu_s * 1e6 / static_cast<double>(s.requests) : 0.0);
  if (!r.target.enabled) {
    j += ",\n  \"target\": null";
  } else {
    const target_report& p = r.target;
    appendf(j, ",\n  \"target\": {\"pid\": %d, \"alive\": %s, \"samples\": %llu", p.pid, p.alive ? "true" : "false",
            static_cast<unsigned long long>(p.samples));
    appendf(j, ", \"rss_baseline_bytes\": %llu, \"rss_peak_bytes\": %llu, \"rss_end_bytes\": %llu, \"rss_tolerance_bytes\": %llu",
            static_cast<unsigned long long>(p.rss_baseline_bytes), static_cast<unsigned long long>(p.rss_peak_bytes),
            static_cast<unsigned long long>(p.rss_end_bytes), static_cast<unsigned long long>(p.rss_tolerance_bytes));
    appendf(j, ", \"cpu_s\": %.6f, \"cpu_pct\": %.3f, \"cpu_us_per_request\": %.3f, \"settle_s\": %.3f, \"settled\": %s}",
            p.cpu_s, p.cpu_pct, p.cpu_us_per_request, p.settle_s, p.settled ? "true" : "false");
  }
  j += ",\n  \"checks\": [";
  for (std::size_t i = 0; i < r.checks.size(); ++i) {
    const check_result& c = r.checks[i];
    j += i == 0 ? "\n    {\"check\": " : ",\n    {\"check\": ";
    append_json_string(j, c.name);
    appendf(j, ", \"failed\": %s, \"measured\": %.6f, \"reference\": %.6f, \"message\": ", c.failed ? "true" : "false",
            c.measured, c.reference);
    append_json_string(j, c.message);
    j += "}";
  }
  j += r.checks.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return j;
}

}  // namespace loadtest
