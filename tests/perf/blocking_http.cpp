#include "tests/perf/blocking_http.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string_view>


namespace gateway::perf {

namespace {

bool send_all(int fd, std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

sockaddr_in loopback(std::uint16_t port) noexcept {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Position of `needle` in `hay`, ASCII case-insensitively; npos if absent.
std::size_t find_nocase(std::string_view hay, std::string_view needle) noexcept {
  const auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it == hay.end() ? std::string_view::npos : static_cast<std::size_t>(it - hay.begin());
}

// Reads one response from `fd` into `buf` (which may hold bytes read
// earlier) and removes it. Content-Length or chunked framing.
bool read_response(int fd, std::string& buf) {
  char chunk[16384];
  const auto fill = [&]() {
    for (;;) {
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
  };
  std::size_t head_end;
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return false;
  const std::string_view head(buf.data(), head_end + 4);
  const bool ok = head.rfind("HTTP/1.1 200 ", 0) == 0;
  std::size_t total = 0;
  if (const std::size_t cl = find_nocase(head, "\r\ncontent-length:"); cl != std::string_view::npos) {
    std::size_t at = cl + 17;
    while (at < head.size() && head[at] == ' ') ++at;
    std::size_t length = 0;
    std::from_chars(head.data() + at, head.data() + head.size(), length);
    total = head.size() + length;
    while (buf.size() < total)
      if (!fill()) return false;
  } else if (find_nocase(head, "\r\ntransfer-encoding: chunked") != std::string_view::npos) {
    std::size_t end;
    while ((end = buf.find("\r\n0\r\n\r\n", head.size() - 2)) == std::string::npos)
      if (!fill()) return false;
    total = end + 7;
  } else {
    return false;
  }
  buf.erase(0, total);
  return ok;
}

}  // namespace

blocking_clients::blocking_clients(std::uint16_t port, unsigned connections, std::string request)
    : request_(std::move(request)) {
  for (unsigned i = 0; i < connections; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    fds_.push_back(fd);
    const sockaddr_in a = loopback(port);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error(std::string("blocking_clients: connect: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // A missing answer fails the run instead of hanging it.
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
}

blocking_clients::~blocking_clients() {
  for (int fd : fds_) ::close(fd);
}

std::uint64_t blocking_clients::run_in_waves(unsigned waves) {
  std::uint64_t failed = 0;
  std::vector<std::string> bufs(fds_.size());
  std::vector<bool> alive(fds_.size(), true);
  for (unsigned w = 0; w < waves; ++w) {
    for (std::size_t i = 0; i < fds_.size(); ++i)
      if (alive[i] && !send_all(fds_[i], request_)) alive[i] = false;
    for (std::size_t i = 0; i < fds_.size(); ++i) {
      if (alive[i] && !read_response(fds_[i], bufs[i])) alive[i] = false;
      if (!alive[i]) ++failed;
    }
  }
  return failed;
}

std::uint64_t blocking_clients::run_one_at_a_time(unsigned per_connection) {
  std::uint64_t failed = 0;
  std::string buf;
  for (int fd : fds_) {
    buf.clear();
    for (unsigned i = 0; i < per_connection; ++i) {
      if (!send_all(fd, request_) || !read_response(fd, buf)) {
        failed += per_connection - i;
        break;
      }
    }
  }
  return failed;
}

}  // namespace gateway::perf
