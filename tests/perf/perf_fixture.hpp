#pragma once
// Perf-test fixture: the Release binaries (gateway, echo_backend, loadtest
// from GATEWAY_BIN_DIR) run as child processes on loopback, port 0, and the
// gates that judge a loadtest JSON report (loadtest/src/report.hpp lists its
// fields).
//
// The gates and their bounds (README, "Performance gates"):
//   open loop, 2,000 connections, 10,000 req/s (loadtest/scenarios/open-loop.conf):
//     p99 <= 50 ms, gateway CPU <= 70 % of one core, peak RSS <= 500 MiB,
//     RSS back within the sampler's tolerance of its baseline within 30 s,
//     no error of any kind (every answer 200, nothing dropped);
//   shutdown: after SIGTERM the gateway exits 0 and its last stderr line is
//     "gateway: stopped (connections 0, coroutines 0, threads 0)".
// Every function here runs on the test's thread.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/json/reader.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/files.hpp"

namespace gateway::perf {

using test::child_process;
using test::port_after_listening_on;

// GATEWAY_BIN_DIR/name and GATEWAY_SOURCE_DIR/relative.
std::string bin_path(std::string_view name);
std::string source_path(std::string_view relative);

// Raises this process's open-file soft limit to its hard limit (children
// inherit it: 2,000 client connections need more than the usual 1,024).
void raise_open_file_limit() noexcept;

using test::find_program;
using test::temp_dir;

// A started child with the port it announced.
struct started {
  std::unique_ptr<child_process> proc;
  unsigned port = 0;
};

// echo_backend --listen 127.0.0.1:0 plus `extra`; waits for its
// "listening on" line. Throws std::runtime_error if it does not come.
started start_echo_backend(const std::vector<std::string>& extra = {});

// The gateway flags every perf run uses: loopback port 0, the backend, the
// key the scenarios send, no access log (as nginx with access_log off), and a
// rate limit too high to answer 429 but still on the path, so the limiter's
// per-request cost is measured (loadtest spreads 250 source addresses, so it
// tracks 250 clients).
inline constexpr std::string_view perf_api_key = "loadtest-key";
std::vector<std::string> gateway_flags(unsigned backend_port);

// The gateway binary with `flags`; waits for "gateway: listening on".
started start_gateway(const std::vector<std::string>& flags);

// The same for the gateway executable `binary`, in this environment plus
// `env` ("NAME=value"), run under `prefix` (an argv prefix, e.g. valgrind's),
// waiting up to `limit` for its "listening on" line.
started start_gateway_binary(const std::string& binary, const std::vector<std::string>& flags,
                             const std::vector<std::string>& env = {}, const std::vector<std::string>& prefix = {},
                             std::chrono::seconds limit = std::chrono::seconds(10));

struct load_outcome {
  std::optional<int> exit_status;  // nullopt: killed after the time limit
  json::value report;              // null when the JSON could not be read
  std::string output;              // loadtest's stdout and stderr, for failure messages
};

// Runs loadtest with `args` plus "--json <file> --quiet"; parses the report.
load_outcome run_loadtest(std::vector<std::string> args, const temp_dir& dir, std::string_view name,
                          std::chrono::seconds limit);

// A number at a path of object keys in `v` ({"latency_ms","p99"}); NaN when
// the path does not lead to a number.
double number_at(const json::value& v, std::initializer_list<std::string_view> path) noexcept;

struct open_loop_limits {
  double p99_ms = 50.0;
  double cpu_pct = 70.0;                              // of one core
  double rss_peak_bytes = 500.0 * 1024 * 1024;        // 500 MiB
  double settle_s = 30.0;
  double min_delivered = 0.95;  // measured requests / (rate x duration), catches a stalled generator
};

// One message per failed gate; each starts with the gate's name ("p99",
// "cpu", "rss-peak", "rss-settle", "errors", "dropped", "status", "volume",
// "report"). Empty: every gate passed.
std::vector<std::string> open_loop_gate_failures(const json::value& report, const open_loop_limits& limits);

// True if some message in `failures` is for gate `name`.
bool has_gate(const std::vector<std::string>& failures, std::string_view name);

// Sends SIGTERM to the gateway and waits (up to `limit`) for it to exit;
// messages for a non-zero exit, a missing exit, or a final "stopped" line
// that is missing or shows live connections, coroutines or threads.
std::vector<std::string> shutdown_gate_failures(child_process& gateway, std::chrono::seconds limit);

// Parses "gateway: stopped (connections A, coroutines B, threads C)";
// nullopt when `line` is not that line.
struct live_counts {
  long long connections = -1, coroutines = -1, threads = -1;
};
std::optional<live_counts> parse_stopped_line(std::string_view line) noexcept;

// A one-line summary of a report, for the test log.
std::string summarize(const json::value& report);

// Joins messages with "; ".
std::string join(const std::vector<std::string>& messages);

}  // namespace gateway::perf
