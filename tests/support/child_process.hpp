#pragma once
// Test support: run another program (the Release gateway, echo_backend,
// loadtest) as a child process with its stdout and stderr captured through
// pipes, wait for a line it prints (its port), signal it, and collect its exit
// status, all with deadlines so a hung child fails the test instead of
// hanging CI.
//
// Ownership: a child_process owns its pid and both pipe ends. The destructor
// of a child still running sends SIGKILL and reaps it, so a failed REQUIRE
// never leaves a process behind. Only the thread that owns the object may
// use it. Waiting uses poll(2) on the pipes and a pidfd (Linux 5.3+), no
// sleeps.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace gateway::test {

class child_process {
 public:
  // Starts argv[0] (a path) with argv, in this process's environment plus
  // `env` ("NAME=value" entries, which replace variables of the same name).
  // Throws std::runtime_error if the program cannot be started.
  explicit child_process(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }

  // Reads output until a line of stdout (from_stderr false) or stderr
  // contains `needle` at or after byte `from` of that stream (out().size()
  // or err().size() taken earlier: only output that came later); returns
  // that whole line, or nullopt when the child closed the stream, exited or
  // `limit` passed first.
  std::optional<std::string> wait_for_line(std::string_view needle, bool from_stderr, std::chrono::milliseconds limit,
                                           std::size_t from = 0);

  // Reads output until stdout (from_stderr false) or stderr holds `count`
  // occurrences of `needle`; false when the stream ended, the child exited
  // or `limit` passed first.
  bool wait_for_count(std::string_view needle, std::size_t count, bool from_stderr, std::chrono::milliseconds limit);

  // Sends `sig` (no-op once the child has been reaped).
  void signal(int sig) noexcept;

  // Reads both streams to their end and reaps the child. Returns its exit
  // status (0..255), 128 + N when killed by signal N, or nullopt when it is
  // still running after `limit`.
  std::optional<int> wait_exit(std::chrono::milliseconds limit);

  // Everything read so far from each stream.
  const std::string& out() const noexcept { return out_; }
  const std::string& err() const noexcept { return err_; }

 private:
  // One poll round of at most `limit`: reads what is ready, notes EOF on
  // each stream and reaps the child once it has exited.
  void pump(std::chrono::milliseconds limit);
  void reap_if_exited() noexcept;

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int pid_fd_ = -1;
  bool reaped_ = false;
  int status_ = -1;
  std::string out_;
  std::string err_;
};

// "ADDR:PORT" at the end of a "listening on ADDR:PORT ..." line: the port,
// or 0 when there is none.
unsigned port_after_listening_on(std::string_view line) noexcept;

// VmRSS of process `pid` in bytes (a child's, to keep the test's own memory
// out of the figure); 0 when it cannot be read.
std::uint64_t rss_of(pid_t pid);

// VmHWM of process `pid` in bytes: the peak of its VmRSS so far, which
// catches a short spike no sampling of rss_of() would; 0 when it cannot be
// read.
std::uint64_t peak_rss_of(pid_t pid);

}  // namespace gateway::test
