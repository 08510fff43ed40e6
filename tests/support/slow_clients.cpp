#include "tests/support/slow_clients.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <vector>

#include "tests/support/wait.hpp"

namespace gateway::test {
namespace {

int open_nonblocking(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);  // completes in the background (EINPROGRESS)
  return fd;
}

// Not yet connected, nothing to read, or the send buffer is full: try again
// next round.
bool transient(int err) noexcept { return err == EAGAIN || err == ENOTCONN || err == EINPROGRESS; }

}  // namespace

slow_clients::slow_clients(std::uint16_t port, std::size_t count, std::chrono::milliseconds interval)
    : thread_([this, port, count, interval] { run(port, count, interval); }) {}

slow_clients::~slow_clients() { stop(); }

void slow_clients::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void slow_clients::run(std::uint16_t port, std::size_t count, std::chrono::milliseconds interval) {
  constexpr std::string_view head = "GET /api/slow HTTP/1.1\r\nHost: t\r\nX-Slow: ";
  std::vector<int> fds(count, -1);
  std::vector<std::size_t> sent(count, 0);
  while (!stop_) {
    for (std::size_t i = 0; i < count && !stop_; ++i) {
      // The head never ends, so any answer (the 408 of the header timeout)
      // or a close means the gateway is done with this connection: it is
      // replaced in the same round.
      if (fds[i] >= 0) {
        char sink[512];
        ssize_t n = ::recv(fds[i], sink, sizeof sink, 0);
        if (n >= 0 || !transient(errno)) {
          ::close(fds[i]);
          fds[i] = -1;
        }
      }
      if (fds[i] < 0) {
        fds[i] = open_nonblocking(port);
        if (fds[i] < 0) continue;
        sent[i] = 0;
        ++connects_;
      }
      char byte = sent[i] < head.size() ? head[sent[i]] : 'a';
      if (::send(fds[i], &byte, 1, MSG_NOSIGNAL) == 1) {
        ++sent[i];
        ++bytes_sent_;
      } else if (!transient(errno)) {
        ::close(fds[i]);
        fds[i] = -1;
      }
    }
    ++rounds_;
    wait_until([this] { return stop_.load(); }, interval);
  }
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
}

}  // namespace gateway::test
