#pragma once
// Pass/fail checks on a loadtest report, so loadtest can gate any HTTP
// service in CI:
//
//   --fail-if 'p99>50ms'        the run fails when the condition holds
//   --baseline old.json --max-regression 10%
//                               the run fails when a metric is worse than
//                               an earlier report's by more than 10 %
//
// Grammar of a condition:  METRIC OP NUMBER[UNIT]   (spaces allowed)
//   OP      >  >=  <  <=  ==  !=
//   METRIC  a name from metric_table() below: latency (p50 p90 p99 p999
//           max mean min: a time, a unit is required: ns us ms s), rps,
//           requests, ok, errors, errors.KIND, dropped, error_rate (%),
//           and with --pid: cpu (% of one core), cpu_per_request (a time),
//           rss_peak / rss_end (bytes: B KiB MiB GiB KB MB GB, bare =
//           bytes), settle (a time).
// Values are compared in the report's own units (ms for latency), after
// converting the given unit.
//
// The report is read back from its JSON text (report.hpp), so a baseline
// file and the current run are judged the same way. Every function here is
// pure and reentrant.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/json/reader.hpp"

namespace loadtest {

enum class metric_kind { count, rate, time_ms, percent, bytes };

struct metric_info {
  std::string_view name;
  metric_kind kind;
  bool higher_is_worse;
  std::string_view description;
};
const std::vector<metric_info>& metric_table();

enum class comparison { greater, greater_equal, less, less_equal, equal, not_equal };

struct threshold {
  std::string text;  // as given, for messages
  std::string metric;
  comparison op = comparison::greater;
  double value = 0;  // in the report's unit for the metric
};

// Parses one --fail-if condition; nullopt with `error` saying what is wrong.
std::optional<threshold> parse_threshold(std::string_view text, std::string& error);

// "10%", "10", "0.5%": a fraction (0.10); nullopt unless 0 < x < 10 (1000 %).
std::optional<double> parse_percent(std::string_view text);

// A metric's value in a report; nullopt when the report does not have it
// (the target's figures need --pid).
std::optional<double> metric_value(const gateway::json::value& report, std::string_view metric);

struct check_result {
  std::string name;     // the condition as given, or "regression:METRIC"
  bool failed = false;
  double measured = 0;  // in the report's unit
  double reference = 0; // the threshold, or the baseline's value
  std::string message;  // "p99>50ms: p99 is 73.200 ms"
};

check_result evaluate(const threshold& t, const gateway::json::value& report);

// Each of `metrics` in `report` against `baseline`: failed when worse by
// more than `max_regression` (a fraction) in the metric's bad direction.
// A metric missing from either report fails; one that is 0 in the baseline
// cannot regress by a fraction and is skipped with a note.
std::vector<check_result> compare_to_baseline(const gateway::json::value& report, const gateway::json::value& baseline,
                                              const std::vector<std::string>& metrics, double max_regression);

// The metric's unit as printed ("ms", "req/s", "%", "B", "").
std::string_view unit_of(metric_kind k) noexcept;

}  // namespace loadtest
