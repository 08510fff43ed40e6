#pragma once
// What the deterministic gates count in a running gateway process, and the
// tools that count it, chosen automatically (README, "Performance gates"):
//
//   system calls by kind: `perf trace record` (the raw_syscalls entry and
//     exit tracepoints of every thread) switched on and off through perf's
//     control FIFO, so that the window holds exactly the counted requests,
//     then `perf trace -s` for calls and errors by kind; else
//     `strace -c -f -p` (attached before the window, interrupted after it).
//     /proc/PID/io is no fallback: its syscr/syscw count read(2)/write(2)
//     but not the socket calls the gateway makes.
//   user-space instructions: `perf stat -e instructions:u` where the kernel
//     has hardware counters; else callgrind (the gateway runs under
//     valgrind, the window is cut with callgrind_control -z / -d).
//
// GATEWAY_PERF_SYSCALL_TOOL=perf|strace and GATEWAY_PERF_INSTRUCTION_TOOL=
// perf|callgrind force one tool. Every function here runs on the calling
// thread and bounds each wait with a deadline; a window whose tool fails
// throws std::runtime_error with the tool's output.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/perf/perf_fixture.hpp"

namespace gateway::perf {

// VmRSS of `pid` in bytes; 0 when unreadable.
std::uint64_t rss_bytes(int pid);

// Waits until RSS of `pid` has moved by at most `slack` bytes over the last
// `span` (sampled every 100 ms), at most `limit`. Returns the last sample,
// or nullopt if it never settled.
std::optional<std::uint64_t> settled_rss(int pid, std::chrono::milliseconds span, std::uint64_t slack,
                                         std::chrono::milliseconds limit);

// Waits until every thread of `pid` is asleep on three looks in a row, 2 ms
// apart (the requests' last bookkeeping is done), at most `limit`.
bool wait_quiescent(int pid, std::chrono::milliseconds limit);

struct syscall_count {
  std::uint64_t calls = 0;   // entries
  std::uint64_t errors = 0;  // of which returned an error (EAGAIN, ...)
};
using syscall_counts = std::map<std::string, syscall_count>;

enum class syscall_tool { perf, strace };
enum class instruction_tool { perf, callgrind };
std::string_view name_of(syscall_tool t) noexcept;
std::string_view name_of(instruction_tool t) noexcept;

// The first tool that works on this machine (probed once per process), or
// nullopt with `why` listing what was tried and how each failed.
std::optional<syscall_tool> pick_syscall_tool(std::string& why);
std::optional<instruction_tool> pick_instruction_tool(std::string& why);

// Counts the system calls of every thread of `pid` from construction (which
// returns once counting has begun) to end().
class syscall_window {
 public:
  syscall_window(syscall_tool tool, int pid, const temp_dir& dir);
  ~syscall_window();
  syscall_window(const syscall_window&) = delete;
  syscall_window& operator=(const syscall_window&) = delete;
  syscall_counts end();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Counts the user-space instructions of `pid` from construction to end().
// With callgrind, `pid` must be a gateway started under
// callgrind_command(dir) (the prefix below).
class instruction_window {
 public:
  instruction_window(instruction_tool tool, int pid, const temp_dir& dir);
  ~instruction_window();
  instruction_window(const instruction_window&) = delete;
  instruction_window& operator=(const instruction_window&) = delete;
  std::uint64_t end();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// argv prefix that runs a program under callgrind, its dumps in `dir`.
std::vector<std::string> callgrind_command(const temp_dir& dir);

// Parsers of the tools' outputs (exposed for the unit tests).
// `perf trace -s`: a table per thread, summed.
syscall_counts parse_perf_trace_summary(std::string_view text);
// The value of `event` in `perf stat -x,` output; nullopt if not counted.
std::optional<std::uint64_t> parse_perf_count(std::string_view csv, std::string_view event);
// The table of `strace -c`.
syscall_counts parse_strace_summary(std::string_view text);
// The "summary:" line of a callgrind dump (instructions executed).
std::optional<std::uint64_t> parse_callgrind_summary(std::string_view dump);

}  // namespace gateway::perf
