#pragma once
// The load generator's settings: command line, scenario files, units.
//
// A scenario file is plain text, one `key = value` per line, `#` starts a
// comment. Keys are the long command-line option names (dashes or
// underscores), plus the repeatable `header = Name: value` and
// `request = WEIGHT METHOD PATH [body=SIZE] [gzip]` (the request mix: each
// request picks a line with probability weight / sum of weights). The
// command line is applied after the scenario, so its options override; a
// --method, --body-size or --gzip on the command line replaces the mix with
// that one request. See loadtest/scenarios/*.conf.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loadtest {

struct request_spec {
  std::uint32_t weight = 1;
  std::string method = "GET";
  std::string path;  // empty: the path of --url
  std::uint64_t body_size = 0;
  bool gzip = false;
};

struct target_url {
  std::string host;  // as written (numeric IPv4 or a name resolved once at start-up)
  std::uint16_t port = 80;
  std::string path = "/";  // with the query, if any
};

struct loadtest_options {
  std::string scenario_name;  // file stem of --scenario, or "adhoc"
  std::string url_text;
  target_url url;
  std::uint32_t connections = 2000;
  double rate = 0.0;  // aggregate req/s; 0 means closed loop
  std::chrono::nanoseconds duration = std::chrono::seconds(10);
  std::chrono::nanoseconds warmup = std::chrono::seconds(1);
  std::chrono::nanoseconds timeout = std::chrono::seconds(10);  // per request (and per connect)
  unsigned threads = 1;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<request_spec> requests;  // never empty after parse_command_line succeeds
  std::uint32_t source_ips = 0;        // 0: let the kernel pick (127.0.0.1)
  std::vector<int> expect_status{200};
  std::string json_path;
  int pid = 0;
  std::uint64_t max_requests = 0;  // 0: no limit; counts measured requests only
  std::optional<std::uint64_t> rss_tolerance;  // default: max(10 % of baseline, 8 MiB)
  std::chrono::nanoseconds settle_timeout = std::chrono::seconds(30);
  unsigned max_reconnects = 10;  // consecutive failures before a connection gives up
  bool quiet = false;            // no progress lines
  // CI checks (thresholds.hpp): conditions that fail the run, and an
  // earlier report to compare against.
  std::vector<std::string> fail_if;  // each already validated by parse_threshold
  std::string baseline_path;
  double max_regression = 0.10;  // a fraction; applies with --baseline
  std::vector<std::string> regression_metrics{"rps", "p99"};
};

// Parses argv[1..argc). --scenario is applied first wherever it appears, then
// the other options in order. Returns an error message, or nullopt on success.
// `help` is set when --help was given (nothing else is checked then).
std::optional<std::string> parse_command_line(int argc, char** argv, loadtest_options& out, bool& help);

// Applies a scenario file's text to `out`. Returns an error message naming the
// line, or nullopt.
std::optional<std::string> apply_scenario_text(std::string_view text, loadtest_options& out);

std::string_view usage_text() noexcept;

// Sizes and durations are the gateway's (gateway/core/units.hpp), so a value
// means the same to loadtest and to the gateway flag it is compared with;
// surrounding blanks are ignored here (scenario files).
// "10s", "500ms", "250us", "2m", "1.5s"; a bare number means seconds.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) noexcept;
// "1KiB"/"1k", "10MiB"/"10m", "1GiB"/"1g" (binary, any case); "1KB", "1MB",
// "1GB" (decimal); a bare number means bytes.
std::optional<std::uint64_t> parse_size(std::string_view text) noexcept;
// "http://HOST[:PORT][/PATH]" (http only).
std::optional<target_url> parse_url(std::string_view text);

}  // namespace loadtest
