#include "tests/perf/gate/counters.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "loadtest/src/proc_sampler.hpp"

namespace gateway::perf {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = text.find(sep, start);
    out.emplace_back(text.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

std::optional<std::uint64_t> to_u64(std::string_view s) {
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::vector<int> thread_ids(int pid) {
  std::vector<int> ids;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (auto id = to_u64(e->d_name)) ids.push_back(static_cast<int>(*id));
    ::closedir(d);
  }
  return ids;
}

// Runs argv to completion (at most `limit`); its exit status and output.
struct finished {
  std::optional<int> status;
  std::string output;
};
finished run_to_end(const std::vector<std::string>& argv, std::chrono::milliseconds limit) {
  child_process p(argv);
  finished f;
  f.status = p.wait_exit(limit);
  f.output = p.out() + p.err();
  return f;
}

std::string forced(const char* env) {
  const char* v = std::getenv(env);
  return v != nullptr ? std::string(v) : std::string();
}

// A perf command (`perf stat` or `perf trace record`) attached to `pid`
// with its events disabled until "enable" is written to its control FIFO,
// as perf-stat(1) and perf-record(1) describe; each command is acknowledged
// on the second FIFO. `args` come after "perf"; the -p, -D and --control
// options are added here.
class perf_control {
 public:
  perf_control(std::vector<std::string> args, int pid, const temp_dir& dir, const std::string& tag) {
    const std::string ctl = dir.file(tag + ".ctl");
    const std::string ack = dir.file(tag + ".ack");
    if (::mkfifo(ctl.c_str(), 0600) != 0 || ::mkfifo(ack.c_str(), 0600) != 0)
      throw std::runtime_error("mkfifo: " + std::string(std::strerror(errno)));
    // Read-write: opening never blocks and never sees end-of-file.
    ack_fd_ = ::open(ack.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    args.insert(args.begin(), find_program("perf"));
    args.insert(args.end(), {"-p", std::to_string(pid), "-D", "-1", "--control", "fifo:" + ctl + "," + ack});
    proc_ = std::make_unique<child_process>(args);
    // perf opens the control FIFO once its events exist (disabled).
    const auto deadline = clock_type::now() + 60s;
    while ((ctl_fd_ = ::open(ctl.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
      if (errno != ENXIO || clock_type::now() > deadline || proc_->wait_exit(10ms))
        throw std::runtime_error("perf did not start: " + proc_->err());
    }
    command("enable");
  }
  ~perf_control() {
    if (ctl_fd_ >= 0) ::close(ctl_fd_);
    if (ack_fd_ >= 0) ::close(ack_fd_);
  }
  perf_control(const perf_control&) = delete;
  perf_control& operator=(const perf_control&) = delete;

  // Disables the events and stops perf (its output is complete then).
  void finish() {
    command("disable");
    proc_->signal(SIGINT);
    if (!proc_->wait_exit(60s)) throw std::runtime_error("perf did not exit after SIGINT");
  }

 private:
  void command(std::string_view what) {
    const std::string line = std::string(what) + "\n";
    if (::write(ctl_fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      throw std::runtime_error("perf control write failed");
    std::string got;
    const auto deadline = clock_type::now() + 30s;
    while (got.find("ack") == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
      if (left.count() <= 0) throw std::runtime_error("perf did not acknowledge '" + std::string(what) + "'");
      pollfd p{ack_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100))) > 0) {
        char buf[64];
        const ssize_t n = ::read(ack_fd_, buf, sizeof buf);
        if (n > 0) got.append(buf, static_cast<std::size_t>(n));
      } else if (proc_->wait_exit(0ms)) {
        throw std::runtime_error("perf exited: " + proc_->err());
      }
    }
  }

  std::unique_ptr<child_process> proc_;
  int ctl_fd_ = -1;
  int ack_fd_ = -1;
};

// `perf trace -s` of a `perf trace record` file: the summary.
std::string perf_trace_summary(const std::string& data) {
  const auto r = run_to_end({find_program("perf"), "trace", "-s", "-i", data}, 120s);
  if (r.status != 0) throw std::runtime_error("perf trace -s failed: " + r.output.substr(0, 400));
  return r.output;
}

// The probes: a small run of each tool, the way the gates use it.
bool perf_traces(std::string& why) {
  const std::string perf = find_program("perf");
  if (perf.empty()) {
    why += "perf: not installed (Debian: linux-perf); ";
    return false;
  }
  temp_dir dir;
  const std::string data = dir.file("probe.data");
  const auto r = run_to_end({perf, "trace", "record", "-o", data, "--", "/bin/true"}, 30s);
  try {
    if (r.status == 0 && !parse_perf_trace_summary(perf_trace_summary(data)).empty()) return true;
  } catch (const std::exception&) {
  }
  why += "perf trace record: " + r.output.substr(0, r.output.find('\n')) + "; ";
  return false;
}

bool perf_counts(const std::string& event, std::string& why) {
  const std::string perf = find_program("perf");
  if (perf.empty()) {
    why += "perf: not installed (Debian: linux-perf); ";
    return false;
  }
  const auto r = run_to_end({perf, "stat", "-x,", "-e", event, "--", "/bin/true"}, 30s);
  if (r.status == 0 && parse_perf_count(r.output, event)) return true;
  why += "perf stat -e " + event + ": " + r.output.substr(0, r.output.find('\n')) + "; ";
  return false;
}

bool strace_attaches(std::string& why) {
  const std::string strace = find_program("strace");
  if (strace.empty()) {
    why += "strace: not installed; ";
    return false;
  }
  // Attaching to a process strace did not start is what the gate does
  // (ptrace permission: same user and ptrace_scope, or CAP_SYS_PTRACE).
  child_process sleeper({"/bin/sleep", "30"});
  child_process s({strace, "-c", "-f", "-p", std::to_string(sleeper.pid()), "-o", "/dev/null"});
  const bool attached = s.wait_for_count("attached", 1, true, 10s);
  s.signal(SIGINT);
  s.wait_exit(10s);
  if (!attached) why += "strace -p: " + s.err().substr(0, s.err().find('\n')) + "; ";
  return attached;
}

}  // namespace

std::uint64_t rss_bytes(int pid) {
  const auto rss = loadtest::parse_vm_rss_bytes(read_text("/proc/" + std::to_string(pid) + "/status"));
  return rss.value_or(0);
}

std::optional<std::uint64_t> settled_rss(int pid, std::chrono::milliseconds span, std::uint64_t slack,
                                         std::chrono::milliseconds limit) {
  const auto deadline = clock_type::now() + limit;
  const std::size_t needed = static_cast<std::size_t>(span / 100ms) + 1;
  std::deque<std::uint64_t> samples;
  for (auto next = clock_type::now(); clock_type::now() < deadline; next += 100ms) {
    samples.push_back(rss_bytes(pid));
    if (samples.size() > needed) samples.pop_front();
    if (samples.size() == needed) {
      const auto [lo, hi] = std::minmax_element(samples.begin(), samples.end());
      if (*lo > 0 && *hi - *lo <= slack) return samples.back();
    }
    std::this_thread::sleep_until(next + 100ms);
  }
  return std::nullopt;
}

bool wait_quiescent(int pid, std::chrono::milliseconds limit) {
  const auto deadline = clock_type::now() + limit;
  int quiet_looks = 0;
  while (clock_type::now() < deadline) {
    bool asleep = true;
    for (int tid : thread_ids(pid)) {
      const std::string stat = read_text("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat");
      const std::size_t close = stat.rfind(')');
      const char state = close != std::string::npos && close + 2 < stat.size() ? stat[close + 2] : '?';
      if (state != 'S' && state != 'D') asleep = false;
    }
    quiet_looks = asleep ? quiet_looks + 1 : 0;
    if (quiet_looks == 3) return true;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

std::string_view name_of(syscall_tool t) noexcept { return t == syscall_tool::perf ? "perf" : "strace"; }
std::string_view name_of(instruction_tool t) noexcept { return t == instruction_tool::perf ? "perf" : "callgrind"; }

std::optional<syscall_tool> pick_syscall_tool(std::string& why) {
  // Probed once (a named pair: GCC 12 emits two static structured bindings
  // of the same names in one file under one assembler symbol).
  static const auto probe = [] {
    std::string w;
    const std::string force = forced("GATEWAY_PERF_SYSCALL_TOOL");
    if (force.empty() || force == "perf")
      if (perf_traces(w)) return std::pair{std::optional(syscall_tool::perf), w};
    if (force.empty() || force == "strace")
      if (strace_attaches(w)) return std::pair{std::optional(syscall_tool::strace), w};
    if (!force.empty() && force != "perf" && force != "strace") w += "GATEWAY_PERF_SYSCALL_TOOL=" + force + " is neither perf nor strace; ";
    w += "/proc/PID/io counts no socket calls, so it cannot stand in";
    return std::pair{std::optional<syscall_tool>(), w};
  }();
  why = probe.second;
  return probe.first;
}

std::optional<instruction_tool> pick_instruction_tool(std::string& why) {
  static const auto probe = [] {
    std::string w;
    const std::string force = forced("GATEWAY_PERF_INSTRUCTION_TOOL");
    if (force.empty() || force == "perf")
      if (perf_counts("instructions:u", w)) return std::pair{std::optional(instruction_tool::perf), w};
    if (force.empty() || force == "callgrind") {
      if (!find_program("valgrind").empty() && !find_program("callgrind_control").empty())
        return std::pair{std::optional(instruction_tool::callgrind), w};
      w += "callgrind: valgrind or callgrind_control not installed (Debian: valgrind); ";
    }
    if (!force.empty() && force != "perf" && force != "callgrind")
      w += "GATEWAY_PERF_INSTRUCTION_TOOL=" + force + " is neither perf nor callgrind; ";
    return std::pair{std::optional<instruction_tool>(), w};
  }();
  why = probe.second;
  return probe.first;
}

// --- system calls -------------------------------------------------------------

struct syscall_window::impl {
  syscall_tool tool;
  std::string out;  // perf's data file, or strace's summary
  std::unique_ptr<perf_control> perf;
  std::unique_ptr<child_process> strace;
};

syscall_window::syscall_window(syscall_tool tool, int pid, const temp_dir& dir) : impl_(std::make_unique<impl>()) {
  impl_->tool = tool;
  static unsigned serial = 0;
  const std::string tag = "syscalls" + std::to_string(++serial);
  if (tool == syscall_tool::perf) {
    // Two raw_syscalls tracepoints per thread, every entry and exit
    // recorded (the per-kind syscalls:* tracepoints are some 700 per
    // thread, and closing them takes perf 15 s).
    impl_->out = dir.file(tag + ".data");
    impl_->perf = std::make_unique<perf_control>(std::vector<std::string>{"trace", "record", "-o", impl_->out}, pid,
                                                 dir, tag);
    return;
  }
  impl_->out = dir.file(tag + ".strace");
  impl_->strace = std::make_unique<child_process>(
      std::vector<std::string>{find_program("strace"), "-c", "-f", "-p", std::to_string(pid), "-o", impl_->out});
  // strace says "Process PID attached with N threads" once all are traced
  // (older versions: one "Process TID attached" line per thread).
  const auto all_attached = [&] {
    return impl_->strace->err().find("attached with") != std::string::npos ||
           impl_->strace->wait_for_count("attached", thread_ids(pid).size(), true, 0ms);
  };
  const auto deadline = clock_type::now() + 30s;
  while (!all_attached()) {
    if (clock_type::now() > deadline || impl_->strace->wait_exit(10ms))
      throw std::runtime_error("strace did not attach to every thread: " + impl_->strace->err());
  }
}

syscall_window::~syscall_window() = default;

syscall_counts syscall_window::end() {
  if (impl_->tool == syscall_tool::perf) {
    impl_->perf->finish();
    return parse_perf_trace_summary(perf_trace_summary(impl_->out));
  }
  impl_->strace->signal(SIGINT);
  if (!impl_->strace->wait_exit(60s)) throw std::runtime_error("strace did not detach after SIGINT");
  return parse_strace_summary(read_text(impl_->out));
}

// --- instructions ----------------------------------------------------------------

struct instruction_window::impl {
  instruction_tool tool;
  int pid = 0;
  std::string dir;
  std::string out;
  std::unique_ptr<perf_control> perf;
};

std::vector<std::string> callgrind_command(const temp_dir& dir) {
  return {find_program("valgrind"), "--tool=callgrind", "--callgrind-out-file=" + dir.file("callgrind.out.%p")};
}

namespace {

void callgrind_control(const std::string& option, int pid) {
  const auto r = run_to_end({find_program("callgrind_control"), option, std::to_string(pid)}, 120s);
  if (r.status != 0) throw std::runtime_error("callgrind_control " + option + " failed: " + r.output);
}

}  // namespace

instruction_window::instruction_window(instruction_tool tool, int pid, const temp_dir& dir)
    : impl_(std::make_unique<impl>()) {
  impl_->tool = tool;
  impl_->pid = pid;
  impl_->dir = dir.file("");
  static unsigned serial = 0;
  if (tool == instruction_tool::perf) {
    const std::string tag = "instructions" + std::to_string(++serial);
    impl_->out = dir.file(tag + ".csv");
    impl_->perf = std::make_unique<perf_control>(
        std::vector<std::string>{"stat", "-x,", "-e", "instructions:u", "-o", impl_->out}, pid, dir, tag);
    return;
  }
  callgrind_control("-z", pid);  // zero: what ran before (start-up, warm-up) is not counted
}

instruction_window::~instruction_window() = default;

std::uint64_t instruction_window::end() {
  if (impl_->tool == instruction_tool::perf) {
    impl_->perf->finish();
    const auto n = parse_perf_count(read_text(impl_->out), "instructions:u");
    if (!n) throw std::runtime_error("perf counted no instructions:u");
    return *n;
  }
  callgrind_control("-d", impl_->pid);  // dump (and zero): the window's totals in callgrind.out.PID.N
  const std::string prefix = "callgrind.out." + std::to_string(impl_->pid) + ".";
  unsigned newest = 0;
  if (DIR* d = ::opendir(impl_->dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string_view name(e->d_name);
      if (name.substr(0, prefix.size()) == prefix)
        if (auto n = to_u64(name.substr(prefix.size()))) newest = std::max(newest, static_cast<unsigned>(*n));
    }
    ::closedir(d);
  }
  if (newest == 0) throw std::runtime_error("callgrind_control -d wrote no dump in " + impl_->dir);
  const auto n = parse_callgrind_summary(read_text(impl_->dir + prefix + std::to_string(newest)));
  if (!n) throw std::runtime_error("no summary line in the callgrind dump");
  return *n;
}

// --- parsers ---------------------------------------------------------------------

syscall_counts parse_perf_trace_summary(std::string_view text) {
  // One table per thread: "syscall calls errors total min avg max stddev"
  // rows after a dashed rule, up to the next blank line; summed.
  syscall_counts out;
  bool in_table = false;
  for (const auto& line : split(text, '\n')) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    if (w.empty()) {
      in_table = false;
      continue;
    }
    if (w[0].rfind("----", 0) == 0) {
      in_table = true;
      continue;
    }
    if (!in_table || w.size() < 3) continue;
    const auto calls = to_u64(w[1]);
    const auto errors = to_u64(w[2]);
    if (!calls || !errors) continue;
    auto& c = out[w[0]];
    c.calls += *calls;
    c.errors += *errors;
  }
  return out;
}

std::optional<std::uint64_t> parse_perf_count(std::string_view csv, std::string_view event) {
  for (const auto& line : split(csv, '\n')) {
    const auto f = split(line, ',');
    if (f.size() >= 3 && f[2] == event) return to_u64(f[0]);
  }
  return std::nullopt;
}

syscall_counts parse_strace_summary(std::string_view text) {
  // "% time  seconds  usecs/call  calls  errors  syscall" rows between two
  // dashed rules; an empty errors column means none.
  syscall_counts out;
  int rules = 0;
  for (const auto& line : split(text, '\n')) {
    if (line.rfind("------", 0) == 0) {
      ++rules;
      continue;
    }
    if (rules != 1) continue;
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    if (w.size() < 5) continue;
    const auto calls = to_u64(w[3]);
    if (!calls) continue;
    auto& c = out[w.back()];
    c.calls += *calls;
    if (w.size() >= 6)
      if (auto errors = to_u64(w[4])) c.errors += *errors;
  }
  return out;
}

std::optional<std::uint64_t> parse_callgrind_summary(std::string_view dump) {
  for (const auto& line : split(dump, '\n'))
    if (line.rfind("summary:", 0) == 0) {
      std::string_view v = std::string_view(line).substr(8);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      return to_u64(v.substr(0, v.find(' ')));
    }
  return std::nullopt;
}

}  // namespace gateway::perf
