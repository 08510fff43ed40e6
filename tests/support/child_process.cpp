#include "tests/support/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <charconv>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "loadtest/src/proc_sampler.hpp"

extern char** environ;

namespace gateway::test {

namespace {

using clock_type = std::chrono::steady_clock;

int open_pid_fd(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  return fd < 0 ? -1 : static_cast<int>(fd);
#else
  (void)pid;
  return -1;
#endif
}

int decode_status(int status) noexcept {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// GATEWAY_IO_BACKEND=auto|epoll|io_uring in the tests' environment
// (scripts/test.sh passes it through): a gateway binary started directly
// (argv[0] named gateway) gets --io-backend VALUE appended, unless the test
// chose a backend itself, so the suite can run on either backend. Wrapped
// starts (deny_io_uring, valgrind) are left as the test wrote them.
std::vector<std::string> with_forced_backend(const std::vector<std::string>& argv) {
  const char* forced = std::getenv("GATEWAY_IO_BACKEND");
  if (forced == nullptr || *forced == '\0') return argv;
  const std::string_view program(argv.front());
  const auto slash = program.rfind('/');
  if (program.substr(slash == std::string_view::npos ? 0 : slash + 1) != "gateway") return argv;
  for (const auto& a : argv) {
    if (a == "--io-backend" || a.rfind("--io-backend=", 0) == 0) return argv;
  }
  std::vector<std::string> out = argv;
  out.push_back("--io-backend");
  out.push_back(forced);
  return out;
}

}  // namespace

child_process::child_process(const std::vector<std::string>& given_argv, const std::vector<std::string>& env) {
  if (given_argv.empty()) throw std::runtime_error("child_process: empty argv");
  const std::vector<std::string> argv = with_forced_backend(given_argv);
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  // dup2 clears FD_CLOEXEC on the target, so only 0, 1 and 2 survive exec.
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& x) {
      return x.size() > name.size() && x.compare(0, name.size(), name) == 0 && x[name.size()] == '=';
    });
    if (!replaced) envp.push_back(*e);
  }
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  if (rc != 0) {
    ::close(out_fd_);
    ::close(err_fd_);
    out_fd_ = err_fd_ = -1;
    pid_ = -1;
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  ::fcntl(out_fd_, F_SETFL, ::fcntl(out_fd_, F_GETFL) | O_NONBLOCK);
  ::fcntl(err_fd_, F_SETFL, ::fcntl(err_fd_, F_GETFL) | O_NONBLOCK);
  pid_fd_ = open_pid_fd(pid_);
}

child_process::~child_process() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
  if (pid_fd_ >= 0) ::close(pid_fd_);
}

void child_process::signal(int sig) noexcept {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

void child_process::reap_if_exited() noexcept {
  if (reaped_ || pid_ <= 0) return;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = decode_status(status);
  }
}

void child_process::pump(std::chrono::milliseconds limit) {
  pollfd fds[3];
  int n = 0;
  int out_at = -1, err_at = -1, pid_at = -1;
  if (out_fd_ >= 0) {
    out_at = n;
    fds[n++] = {out_fd_, POLLIN, 0};
  }
  if (err_fd_ >= 0) {
    err_at = n;
    fds[n++] = {err_fd_, POLLIN, 0};
  }
  if (!reaped_ && pid_fd_ >= 0) {
    pid_at = n;
    fds[n++] = {pid_fd_, POLLIN, 0};
  }
  if (n == 0) {
    // Both streams over and no pidfd: look for the exit every 10 ms.
    reap_if_exited();
    if (!reaped_) ::poll(nullptr, 0, std::min<int>(10, static_cast<int>(limit.count())));
    return;
  }
  // Without a pidfd, exit is noticed by polling waitpid every 10 ms.
  const int wait_ms = (!reaped_ && pid_fd_ < 0) ? std::min<int>(10, static_cast<int>(limit.count()))
                                                : static_cast<int>(limit.count());
  const int ready = ::poll(fds, static_cast<nfds_t>(n), wait_ms);
  if (ready < 0) return;  // EINTR, or nothing to wait on: the caller's deadline bounds the loop
  const auto drain = [](int& fd, std::string& into) {
    char buf[16384];
    for (;;) {
      const ssize_t got = ::read(fd, buf, sizeof buf);
      if (got > 0) {
        into.append(buf, static_cast<std::size_t>(got));
        continue;
      }
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
      ::close(fd);  // EOF or a hard error: the stream is over
      fd = -1;
      return;
    }
  };
  if (ready > 0) {
    if (out_at >= 0 && fds[out_at].revents != 0) drain(out_fd_, out_);
    if (err_at >= 0 && fds[err_at].revents != 0) drain(err_fd_, err_);
  }
  if (pid_at < 0 || (ready > 0 && fds[pid_at].revents != 0)) reap_if_exited();
}

std::optional<std::string> child_process::wait_for_line(std::string_view needle, bool from_stderr,
                                                        std::chrono::milliseconds limit, std::size_t from) {
  const auto deadline = clock_type::now() + limit;
  for (;;) {
    const std::string& text = from_stderr ? err_ : out_;
    const std::size_t at = text.find(needle, from);
    if (at != std::string::npos) {
      const std::size_t begin = text.rfind('\n', at);
      const std::size_t end = text.find('\n', at);
      if (end != std::string::npos) {
        const std::size_t line_start = begin == std::string::npos ? 0 : begin + 1;
        return text.substr(line_start, end - line_start);
      }
    }
    const int stream_fd = from_stderr ? err_fd_ : out_fd_;
    if (stream_fd < 0) return std::nullopt;  // that stream ended without the line
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0) return std::nullopt;
    // The round that brings the line may also bring EOF: look again first.
    pump(left);
  }
}

bool child_process::wait_for_count(std::string_view needle, std::size_t count, bool from_stderr,
                                   std::chrono::milliseconds limit) {
  const auto deadline = clock_type::now() + limit;
  for (;;) {
    const std::string& text = from_stderr ? err_ : out_;
    std::size_t seen = 0;
    for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size()))
      ++seen;
    if (seen >= count) return true;
    if ((from_stderr ? err_fd_ : out_fd_) < 0) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0) return false;
    pump(left);
  }
}

std::optional<int> child_process::wait_exit(std::chrono::milliseconds limit) {
  const auto deadline = clock_type::now() + limit;
  for (;;) {
    if (reaped_ && out_fd_ < 0 && err_fd_ < 0) return status_;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0) {
      reap_if_exited();
      if (reaped_) return status_;  // exited, but a grandchild may still hold a pipe
      return std::nullopt;
    }
    pump(left);
  }
}

unsigned port_after_listening_on(std::string_view line) noexcept {
  constexpr std::string_view key = "listening on ";
  const std::size_t at = line.find(key);
  if (at == std::string_view::npos) return 0;
  std::string_view rest = line.substr(at + key.size());
  const std::size_t space = rest.find(' ');
  if (space != std::string_view::npos) rest = rest.substr(0, space);
  const std::size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) return 0;
  const std::string_view digits = rest.substr(colon + 1);
  unsigned port = 0;
  const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc{} || p != digits.data() + digits.size() || port == 0 || port > 65535) return 0;
  return port;
}

std::uint64_t rss_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::stringstream s;
  s << '\n' << f.rdbuf();  // a leading newline, as parse_vm_rss_bytes expects
  return loadtest::parse_vm_rss_bytes(s.str()).value_or(0);
}

std::uint64_t peak_rss_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  unsigned long long kib = 0;
  while (std::getline(f, line)) {
    if (std::sscanf(line.c_str(), "VmHWM: %llu kB", &kib) == 1) return kib * 1024;
  }
  return 0;
}

}  // namespace gateway::test
