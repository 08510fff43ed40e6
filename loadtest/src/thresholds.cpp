#include "loadtest/src/thresholds.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "loadtest/src/options.hpp"

namespace loadtest {
namespace {

using gateway::json::value;

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

const metric_info* find_metric(std::string_view name) {
  for (const auto& m : metric_table())
    if (m.name == name) return &m;
  return nullptr;
}

std::string metric_names() {
  std::string out;
  for (const auto& m : metric_table()) {
    if (!out.empty()) out += ' ';
    out += m.name;
  }
  return out;
}

const value* at_path(const value& v, std::initializer_list<std::string_view> path) {
  const value* at = &v;
  for (const auto key : path) {
    at = at->find(key);
    if (at == nullptr) return nullptr;
  }
  return at;
}

std::optional<double> number(const value& v, std::initializer_list<std::string_view> path) {
  const value* at = at_path(v, path);
  if (at == nullptr || !at->is_number()) return std::nullopt;
  return at->as_double();
}

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, std::fabs(v) >= 1000 ? "%.0f" : "%.3f", v);
  return buf;
}

std::string with_unit(double v, metric_kind k) {
  const std::string_view u = unit_of(k);
  std::string out = k == metric_kind::count ? std::to_string(static_cast<long long>(std::llround(v))) : fmt(v);
  if (!u.empty() && u != "%") out += ' ';
  out += u;
  return out;
}

const char* op_text(comparison op) {
  switch (op) {
    case comparison::greater: return ">";
    case comparison::greater_equal: return ">=";
    case comparison::less: return "<";
    case comparison::less_equal: return "<=";
    case comparison::equal: return "==";
    case comparison::not_equal: return "!=";
  }
  return "?";
}

// The number and its unit: "50ms" -> 50, "ms".
bool split_value(std::string_view text, double& number_out, std::string_view& unit) {
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return false;
  const std::string digits(text.substr(0, i));
  char* end = nullptr;
  errno = 0;
  number_out = std::strtod(digits.c_str(), &end);
  if (errno != 0 || end != digits.c_str() + digits.size() || !std::isfinite(number_out)) return false;
  unit = trim(text.substr(i));
  return true;
}

}  // namespace

std::string_view unit_of(metric_kind k) noexcept {
  switch (k) {
    case metric_kind::count: return "";
    case metric_kind::rate: return "req/s";
    case metric_kind::time_ms: return "ms";
    case metric_kind::percent: return "%";
    case metric_kind::bytes: return "B";
  }
  return "";
}

const std::vector<metric_info>& metric_table() {
  static const std::vector<metric_info> table = {
      {"p50", metric_kind::time_ms, true, "median latency"},
      {"p90", metric_kind::time_ms, true, "90th percentile latency"},
      {"p99", metric_kind::time_ms, true, "99th percentile latency"},
      {"p999", metric_kind::time_ms, true, "99.9th percentile latency"},
      {"max", metric_kind::time_ms, true, "largest latency"},
      {"mean", metric_kind::time_ms, true, "mean latency"},
      {"min", metric_kind::time_ms, true, "smallest latency"},
      {"rps", metric_kind::rate, false, "measured requests per second"},
      {"requests", metric_kind::count, false, "measured requests with a complete response"},
      {"ok", metric_kind::count, false, "measured requests with an expected status"},
      {"errors", metric_kind::count, true, "failed measured requests, all kinds"},
      {"errors.connect", metric_kind::count, true, "connect failures"},
      {"errors.write", metric_kind::count, true, "write failures"},
      {"errors.read", metric_kind::count, true, "read failures"},
      {"errors.parse", metric_kind::count, true, "malformed responses"},
      {"errors.timeout", metric_kind::count, true, "requests over --timeout"},
      {"errors.status", metric_kind::count, true, "statuses outside --expect-status"},
      {"dropped", metric_kind::count, true, "open loop: intended requests never sent"},
      {"error_rate", metric_kind::percent, true, "errors / (requests + errors)"},
      {"cpu", metric_kind::percent, true, "target CPU, % of one core (--pid)"},
      {"cpu_per_request", metric_kind::time_ms, true, "target CPU per measured request (--pid)"},
      {"rss_peak", metric_kind::bytes, true, "target peak RSS (--pid)"},
      {"rss_end", metric_kind::bytes, true, "target RSS after the load (--pid)"},
      {"settle", metric_kind::time_ms, true, "time for the target's RSS to settle (--pid)"},
  };
  return table;
}

std::optional<threshold> parse_threshold(std::string_view text, std::string& error) {
  threshold t;
  t.text = std::string(trim(text));
  std::string_view rest = trim(text);
  std::size_t i = 0;
  while (i < rest.size() && ((rest[i] >= 'a' && rest[i] <= 'z') || (rest[i] >= '0' && rest[i] <= '9') ||
                             rest[i] == '_' || rest[i] == '.'))
    ++i;
  const std::string_view name = rest.substr(0, i);
  const metric_info* m = find_metric(name);
  if (name.empty() || m == nullptr) {
    error = "'" + t.text + "': unknown metric '" + std::string(name) + "' (one of: " + metric_names() + ")";
    return std::nullopt;
  }
  t.metric = std::string(name);
  rest = trim(rest.substr(i));
  static constexpr std::pair<std::string_view, comparison> ops[] = {
      {">=", comparison::greater_equal}, {"<=", comparison::less_equal}, {"==", comparison::equal},
      {"!=", comparison::not_equal},     {">", comparison::greater},     {"<", comparison::less}};
  bool found = false;
  for (const auto& [op_text_, op] : ops) {
    if (rest.substr(0, op_text_.size()) == op_text_) {
      t.op = op;
      rest.remove_prefix(op_text_.size());
      found = true;
      break;
    }
  }
  if (!found) {
    error = "'" + t.text + "': expected one of > >= < <= == != after " + t.metric;
    return std::nullopt;
  }
  rest = trim(rest);
  double n = 0;
  std::string_view unit;
  if (!split_value(rest, n, unit)) {
    error = "'" + t.text + "': expected a number after the comparison";
    return std::nullopt;
  }
  switch (m->kind) {
    case metric_kind::time_ms: {
      const auto d = unit.empty() ? std::nullopt : parse_duration(rest);
      if (!d) {
        error = "'" + t.text + "': " + t.metric + " is a time: give a unit (ns, us, ms, s), as in 50ms";
        return std::nullopt;
      }
      t.value = static_cast<double>(d->count()) / 1e6;
      break;
    }
    case metric_kind::bytes: {
      const auto b = parse_size(rest);
      if (!b) {
        error = "'" + t.text + "': " + t.metric + " is a size: B, KiB, MiB, GiB (or KB, MB, GB)";
        return std::nullopt;
      }
      t.value = static_cast<double>(*b);
      break;
    }
    case metric_kind::percent:
      if (!unit.empty() && unit != "%") {
        error = "'" + t.text + "': " + t.metric + " is a percentage: a number, optionally followed by %";
        return std::nullopt;
      }
      t.value = n;
      break;
    case metric_kind::rate:
    case metric_kind::count:
      if (!unit.empty() && !(m->kind == metric_kind::rate && (unit == "req/s" || unit == "/s"))) {
        error = "'" + t.text + "': " + t.metric + " takes a plain number";
        return std::nullopt;
      }
      t.value = n;
      break;
  }
  return t;
}

std::optional<double> parse_percent(std::string_view text) {
  text = trim(text);
  double n = 0;
  std::string_view unit;
  if (!split_value(text, n, unit) || !(unit.empty() || unit == "%")) return std::nullopt;
  const double fraction = n / 100;
  if (!(fraction > 0 && fraction < 10)) return std::nullopt;
  return fraction;
}

std::optional<double> metric_value(const value& report, std::string_view metric) {
  if (metric == "p50" || metric == "p90" || metric == "p99" || metric == "p999" || metric == "max" ||
      metric == "mean" || metric == "min")
    return number(report, {"latency_ms", metric});
  if (metric == "rps" || metric == "requests" || metric == "ok" || metric == "dropped") return number(report, {metric});
  if (metric == "errors") return number(report, {"errors", "total"});
  if (metric.substr(0, 7) == "errors.") return number(report, {"errors", metric.substr(7)});
  if (metric == "error_rate") {
    const auto errors = number(report, {"errors", "total"});
    const auto requests = number(report, {"requests"});
    if (!errors || !requests) return std::nullopt;
    const double all = *errors + *requests;
    return all > 0 ? 100 * *errors / all : 0.0;
  }
  if (metric == "cpu") return number(report, {"target", "cpu_pct"});
  if (metric == "cpu_per_request") {
    const auto us = number(report, {"target", "cpu_us_per_request"});
    if (!us) return std::nullopt;
    return *us / 1000;
  }
  if (metric == "rss_peak") return number(report, {"target", "rss_peak_bytes"});
  if (metric == "rss_end") return number(report, {"target", "rss_end_bytes"});
  if (metric == "settle") {
    const auto s = number(report, {"target", "settle_s"});
    if (!s) return std::nullopt;
    return *s * 1000;
  }
  return std::nullopt;
}

check_result evaluate(const threshold& t, const value& report) {
  check_result r;
  r.name = t.text;
  r.reference = t.value;
  const metric_info* m = find_metric(t.metric);
  const auto v = metric_value(report, t.metric);
  if (m == nullptr || !v) {
    r.failed = true;
    r.message = t.text + ": " + t.metric + " is not in the report" +
                (m != nullptr && std::string_view(m->description).find("--pid") != std::string_view::npos
                     ? " (it needs --pid)"
                     : "");
    return r;
  }
  r.measured = *v;
  switch (t.op) {
    case comparison::greater: r.failed = *v > t.value; break;
    case comparison::greater_equal: r.failed = *v >= t.value; break;
    case comparison::less: r.failed = *v < t.value; break;
    case comparison::less_equal: r.failed = *v <= t.value; break;
    case comparison::equal: r.failed = *v == t.value; break;
    case comparison::not_equal: r.failed = *v != t.value; break;
  }
  r.message = t.text + ": " + t.metric + " is " + with_unit(*v, m->kind) + (r.failed ? ", which is " : ", not ") +
              op_text(t.op) + " " + with_unit(t.value, m->kind);
  return r;
}

std::vector<check_result> compare_to_baseline(const value& report, const value& baseline,
                                              const std::vector<std::string>& metrics, double max_regression) {
  std::vector<check_result> out;
  for (const auto& name : metrics) {
    check_result r;
    r.name = "regression:" + name;
    const metric_info* m = find_metric(name);
    const auto now = metric_value(report, name);
    const auto then = metric_value(baseline, name);
    if (m == nullptr || !now || !then) {
      r.failed = true;
      r.message = r.name + ": " + name + " is missing from " + (!now ? "this report" : "the baseline");
      out.push_back(std::move(r));
      continue;
    }
    r.measured = *now;
    r.reference = *then;
    if (*then == 0) {
      r.message = r.name + ": 0 in the baseline, no relative change to judge (use --fail-if)";
      out.push_back(std::move(r));
      continue;
    }
    const double change = (*now - *then) / *then;  // +0.12: 12 % higher
    const double worse = m->higher_is_worse ? change : -change;
    r.failed = worse > max_regression;
    char pct[64];
    std::snprintf(pct, sizeof pct, "%+.1f %%", change * 100);
    char limit[32];
    std::snprintf(limit, sizeof limit, "%.1f %%)", max_regression * 100);
    r.message = r.name + ": " + with_unit(*now, m->kind) + " against " + with_unit(*then, m->kind) + " (" + pct +
                (r.failed ? ", worse by more than " : ", within ") + limit;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace loadtest
