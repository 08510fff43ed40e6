#pragma once
// The performance gates of a gateway build (README, "Performance gates";
// the figures behind each tolerance are in docs/perf/gates.md).
//
// Deterministic gates, per proxied request (GET /api/items through the whole
// chain to echo_backend), each over a fixed number of requests on one
// keep-alive connection ("1conn", one request after the other) and on many
// ("100conn": every connection sending at once), held against
// loadtest/baseline.json:
//   allocations.SHAPE        operator new calls (LD_PRELOAD counter);
//   syscalls.SHAPE.KIND      successful calls of one kind (and "KIND
//                            failed" for failures of calls other than
//                            socket I/O): exact;
//   syscalls.SHAPE.waits     epoll_wait calls;
//   syscalls.SHAPE.found-nothing
//                            failed socket reads and writes (EAGAIN: Asio
//                            tries before it waits for readiness);
//   syscalls.SHAPE.housekeeping
//                            futex, timerfd_settime and the allocator's
//                            madvise/munmap/mprotect/brk;
//                            these three are loose: how often the event loop
//                            waits, finds a socket empty or re-arms a timer
//                            depends on timing, so they are held to a wider
//                            slack per group, against a baseline of the same
//                            counting tool;
//   instructions.SHAPE       user-space instructions (perf or callgrind);
//   rss.idle-connection      VmRSS growth per idle keep-alive connection.
// Side-by-side gates, a base build against a candidate: each has its own
// chain (echo_backend, the gateway with one worker, loadtest in closed
// loop), and in every round both chains run at the same moment pinned to
// the same CPU, the rounds alternating between two CPUs; each round gives
// one paired ratio candidate / base:
//   side-by-side.throughput        requests per CPU-second of the chain
//                                  (gateway, echo_backend and loadtest, by
//                                  schedstat and getrusage): the req/s the
//                                  chain reaches on a CPU of its own. Plain
//                                  req/s is noted: sharing a CPU, the two
//                                  chains' req/s even out;
//   side-by-side.cpu-per-request   gateway CPU per request (schedstat run
//                                  time of all its threads, in ns).
// Sharing the moment and the CPU cancels what the neighbours do: run one
// after the other on this machine, A/A ratios ranged 0.7 to 1.4 for CPU per
// request and 0.6 to 2.0 for req/s (docs/perf/gates.md).
//
// Everything runs on the calling thread; the gateway, echo_backend,
// loadtest and the counting tools are child processes on loopback, port 0.
#include <cmath>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/perf/gate/counters.hpp"

namespace gateway::perf {

inline constexpr double not_measured = std::numeric_limits<double>::quiet_NaN();

// One gateway build to measure: its executable and extra environment
// (GATEWAY_INJECT=...).
struct system_under_test {
  std::string label;
  std::string binary;
  std::vector<std::string> env;
};

struct gate_result {
  std::string name;
  std::string unit;
  double measured = not_measured;
  double baseline = not_measured;
  double limit = not_measured;  // the gate fails beyond it (above, or below for throughput)
  bool pass = false;
  std::string note;  // the tool, the interval, or why it failed
  // Side by side: the base's median figure (us of CPU per request, or
  // requests per CPU-second), for a caller that sizes something by it.
  double reference = not_measured;
};

struct side_by_side_settings {
  unsigned connections = 64;
  std::string duration = "1s";  // per run; every request counts (no warm-up)
  unsigned min_rounds = 6;
  unsigned max_rounds = 16;
  double confidence = 0.90;
  unsigned resamples = 4000;
  double throughput_limit = 0.90;  // candidate / base req/s may not be lower
  double cpu_limit = 1.10;         // candidate / base CPU per request may not be higher
};

// Figures of one shape, per request.
struct shape_figures {
  std::optional<double> allocations;
  std::map<std::string, double> syscalls_exact;  // kind -> successful calls
  // counting tool -> loose group (waits, found-nothing, housekeeping) -> calls
  std::map<std::string, std::map<std::string, double>> syscalls_loose;
  std::map<std::string, double> instructions;     // counting tool -> instructions
};

// loadtest/baseline.json.
struct gate_baseline {
  std::string comment;
  // The shapes.
  unsigned warmup_one = 1500;         // requests on the one connection before any window
  unsigned requests_one = 2000;       // counted on it (allocations, system calls)
  unsigned connections_many = 100;
  unsigned warmup_many = 20;          // per connection, all connections at once
  unsigned requests_many = 20;        // counted, per connection
  unsigned instructions_one = 1000;   // counted under the instruction tool (callgrind is slow)
  unsigned instructions_many = 10;    // per connection
  unsigned idle_connections = 1000;
  // Tolerances (README): limit = baseline + slack, or baseline x (1 + ratio).
  double allocations_slack = 0.5;
  double syscalls_exact_slack = 0.05;
  std::map<std::string, double> syscalls_loose_slack{{"waits", 0.5}, {"found-nothing", 1.0}, {"housekeeping", 0.1}};
  double instructions_ratio = 0.03;
  double rss_ratio = 0.05;
  // The figures.
  shape_figures one, many;
  std::optional<double> rss_per_connection;  // bytes
  side_by_side_settings side_by_side;
};

std::optional<gate_baseline> read_baseline(const std::string& path, std::string& error);
std::string baseline_json(const gate_baseline& b);

// Which gates to run.
struct gate_selection {
  bool allocations = true, syscalls = true, instructions = true, rss = true, side_by_side = true;
};
// "allocations,syscalls,instructions,rss,side-by-side" (any subset); nullopt on an unknown name.
std::optional<gate_selection> parse_gate_selection(std::string_view list);

// What the deterministic gates measured in one system.
struct shape_measurement {
  unsigned requests = 0;
  std::optional<double> allocations;  // per request
  std::optional<syscall_counts> syscalls;
  unsigned instruction_requests = 0;
  std::optional<std::uint64_t> instructions;
};
// Instructions per request of a shape, when they were counted.
std::optional<double> instructions_per_request(const shape_measurement& sm) noexcept;

struct deterministic_measurement {
  std::string syscall_tool, instruction_tool;  // empty: none works here
  shape_measurement one, many;
  std::optional<double> rss_per_connection;
  std::vector<std::string> problems;  // a tool, a request or a process that failed
  std::string alloc_traces;           // GATEWAY_PERF_ALLOC_TRACE=N: stacks of the counted allocations
};

// Runs the selected deterministic measurements on `s` (messages on `log`).
deterministic_measurement measure_deterministic(const system_under_test& s, const gate_baseline& b,
                                                const gate_selection& which, std::ostream& log);

// Per-request rates of the exact kinds (successful calls outside the loose
// groups; "KIND failed" for failed calls that are not socket I/O) and of the
// loose groups (waits, found-nothing, housekeeping; always all three).
struct syscall_rates {
  std::map<std::string, double> exact;
  std::map<std::string, double> loose;
};
inline const char* const loose_groups[] = {"waits", "found-nothing", "housekeeping"};
syscall_rates classify_syscalls(const syscall_counts& counts, unsigned requests);

std::vector<gate_result> judge_deterministic(const deterministic_measurement& m, const gate_baseline& b,
                                             const gate_selection& which);
// Replaces the figures of `b` with the medians of those the runs measured
// (keeps what they did not measure).
void update_baseline(gate_baseline& b, const std::vector<deterministic_measurement>& runs);
inline constexpr unsigned baseline_runs = 3;

// The median of paired ratios and its bootstrap percentile interval
// (resampled with a fixed seed, so the same ratios give the same interval).
struct ratio_stats {
  std::vector<double> ratios;
  double median = not_measured, low = not_measured, high = not_measured;
};
ratio_stats bootstrap_median(const std::vector<double>& ratios, double confidence, unsigned resamples);

// The side-by-side rule, for a limit L on candidate / base (L = 1.10 for
// CPU per request, where higher is worse; L = 0.90 for throughput, where
// lower is): the gate passes only when the whole bootstrap interval of the
// median paired ratio is on the good side of L, i.e. when the candidate is
// shown to be within 10 %. Rounds are added while the interval holds L
// (more data could still move it off), from min_rounds up to max_rounds.
bool side_by_side_fails(const ratio_stats& s, double limit, bool higher_is_better);
bool side_by_side_undecided(const ratio_stats& s, double limit);

// Compares each candidate with the base in turn (rounds as above); the
// gates of each candidate, by label.
std::map<std::string, std::vector<gate_result>> run_side_by_side(const system_under_test& base,
                                                                  const std::vector<system_under_test>& candidates,
                                                                  const side_by_side_settings& settings,
                                                                  std::ostream& log);

// "gate NAME: measured X, baseline Y, limit Z, pass|FAIL" (+ " -- note").
std::string format_line(const gate_result& r);
std::string format_markdown(const std::vector<gate_result>& results, const std::string& title);
std::string format_report_json(const std::vector<gate_result>& results, const std::string& system,
                               const std::string& base);

// True if the gate `name` is among `results` and failed; names ending in
// '.' match every gate that starts with them ("syscalls.").
bool gate_failed(const std::vector<gate_result>& results, const std::string& name);
bool all_pass(const std::vector<gate_result>& results);

}  // namespace gateway::perf
