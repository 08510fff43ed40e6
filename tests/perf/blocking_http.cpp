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

#include "tests/perf/alloc_counter.hpp"

namespace gateway::perf {

namespace {

constexpr std::string_view canned_response =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

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

blocking_backend::blocking_backend() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("socket failed");
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 1024) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error(std::string("blocking_backend: ") + std::strerror(errno));
  }
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

blocking_backend::~blocking_backend() {
  stopping_ = true;
  // shutdown() wakes a thread blocked in accept() or recv() on Linux.
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  for (int fd : fds_) ::close(fd);
}

void blocking_backend::accept_loop() {
  exclude_this_thread();
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (stopping_) {
      if (fd >= 0) ::close(fd);
      return;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard lock(mutex_);
    fds_.push_back(fd);
    threads_.emplace_back([this, fd] { serve(fd); });
  }
}

void blocking_backend::serve(int fd) {
  exclude_this_thread();
  std::string buf;
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    buf.append(chunk, static_cast<std::size_t>(n));
    std::size_t end;
    while ((end = buf.find("\r\n\r\n")) != std::string::npos) {
      buf.erase(0, end + 4);
      requests_.fetch_add(1, std::memory_order_relaxed);
      if (!send_all(fd, canned_response)) return;
    }
  }
}

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

std::uint64_t blocking_clients::run(unsigned per_connection) {
  std::atomic<std::uint64_t> failed{0};
  std::vector<std::thread> threads;
  threads.reserve(fds_.size());
  for (int fd : fds_) {
    threads.emplace_back([this, fd, per_connection, &failed] {
      exclude_this_thread();
      std::string buf;
      for (unsigned i = 0; i < per_connection; ++i) {
        if (!send_all(fd, request_) || !read_response(fd, buf)) {
          failed.fetch_add(per_connection - i);
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return failed.load();
}

}  // namespace gateway::perf
