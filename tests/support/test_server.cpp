#include "tests/support/test_server.hpp"

#include "tests/support/files.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zlib.h>

#include <asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <exception>

#include "gateway/app/instance.hpp"
#include "gateway/core/memory.hpp"
#include "gateway/json/reader.hpp"
#include "gateway/net/run_bounded.hpp"

namespace gateway::test {

core::config test_config() {
  // The same process-wide memory policy as the gateway binary, so RSS
  // figures measured in tests mean what they mean in production.
  core::configure_process_memory();
  core::config c;
  c.listen.host = "127.0.0.1";
  c.listen.port = 0;
  c.threads = 2;
  c.drain_timeout = std::chrono::seconds(2);
  c.access_log = "off";
  return c;
}

running_server::running_server(const core::config& cfg, const net::chain_factory& chain,
                               std::shared_ptr<net::tls_terminator> tls)
    : own_(std::make_unique<net::server>(cfg, chain, std::move(tls))) {
  srv_ = own_.get();
  srv_->start();
}

running_server::running_server(const core::config& cfg) : app_(std::make_unique<app::instance>(cfg, stdout)) {
  srv_ = &app_->server();
  app_->start();
}

running_server::~running_server() { stop_and_wait(); }

void running_server::stop_and_wait() {
  if (stopped_) return;
  stopped_ = true;
  srv_->stop();
  srv_->wait();
}

void run_with_deadline(std::function<asio::awaitable<void>()> task, std::chrono::milliseconds limit) {
  asio::io_context io;
  std::exception_ptr failure;
  bool done = false;
  asio::co_spawn(io, task(), [&](std::exception_ptr e) {
    failure = e;
    done = true;
  });
  net::run_bounded(io, limit);
  if (!done) throw std::runtime_error("awaitable did not finish within the deadline");
  if (failure) std::rethrow_exception(failure);
}

namespace {
bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}
}  // namespace

std::string http_response::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequal(k, name)) return v;
  return {};
}

std::size_t http_response::count(std::string_view name) const {
  std::size_t n = 0;
  for (const auto& [k, v] : headers) n += iequal(k, name);
  return n;
}

namespace {

// A blocking call on a socket with SO_RCVTIMEO/SO_SNDTIMEO returns EINTR
// (it is not restarted) when the thread is interrupted, and in an io_uring
// build (GATEWAY_IO_URING) the kernel interrupts every thread that has
// submitted to a ring (Asio's cross-thread post does) to run that ring's
// completion work. Such a call is retried until `limit` has passed since
// the first attempt.
template <class Call>
ssize_t retry_eintr(std::chrono::milliseconds limit, Call call) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const ssize_t n = call();
    if (n >= 0 || errno != EINTR || std::chrono::steady_clock::now() >= deadline) return n;
  }
}

}  // namespace

raw_client::raw_client(std::uint16_t port, std::chrono::milliseconds timeout, const char* source_ip)
    : timeout_(timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket() failed");
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (source_ip != nullptr) {
    sockaddr_in src{};
    src.sin_family = AF_INET;
    ::inet_pton(AF_INET, source_ip, &src.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) throw std::runtime_error("bind() failed");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno == EINTR) {
    // The handshake goes on without us: wait for it, then take its outcome.
    pollfd p{fd_, POLLOUT, 0};
    const auto waited = retry_eintr(timeout, [&] { return ::poll(&p, 1, static_cast<int>(timeout.count())); });
    int err = ETIMEDOUT;
    socklen_t len = sizeof err;
    if (waited > 0) ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    rc = err == 0 ? 0 : -1;
    errno = err;
  }
  if (rc != 0) {
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(std::string("connect() failed: ") + std::strerror(errno));
  }
}

raw_client::~raw_client() {
  if (fd_ >= 0) ::close(fd_);
}

bool raw_client::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = retry_eintr(timeout_, [&] { return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); });
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool raw_client::fill() {
  char tmp[65536];
  const ssize_t n = retry_eintr(timeout_, [&] { return ::recv(fd_, tmp, sizeof tmp, 0); });
  if (n <= 0) return false;
  buf_.append(tmp, static_cast<std::size_t>(n));
  return true;
}

std::optional<http_response> raw_client::read_response(bool head_request) {
  std::size_t end;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return std::nullopt;
  http_response r;
  std::string head = buf_.substr(0, end + 2);
  buf_.erase(0, end + 4);
  std::size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  if (status_line.size() < 12) return std::nullopt;
  r.status = std::stoi(status_line.substr(9, 3));
  r.reason = status_line.size() > 13 ? status_line.substr(13) : "";
  std::size_t pos = line_end + 2;
  while (pos < head.size()) {
    std::size_t eol = head.find("\r\n", pos);
    std::string line = head.substr(pos, eol - pos);
    pos = eol + 2;
    auto colon = line.find(':');
    std::string name = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers.emplace_back(name, value);
  }
  bool no_body = head_request || (r.status >= 100 && r.status < 200) || r.status == 204 || r.status == 304;
  if (no_body) return r;
  std::string te = r.header("Transfer-Encoding");
  std::string cl = r.header("Content-Length");
  if (iequal(te, "chunked")) {
    for (;;) {
      std::size_t eol;
      while ((eol = buf_.find("\r\n")) == std::string::npos)
        if (!fill()) return std::nullopt;
      std::size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
      buf_.erase(0, eol + 2);
      if (size == 0) {
        while ((eol = buf_.find("\r\n")) == std::string::npos)
          if (!fill()) return std::nullopt;
        buf_.erase(0, eol + 2);  // (no trailers expected)
        break;
      }
      while (buf_.size() < size + 2)
        if (!fill()) return std::nullopt;
      r.body.append(buf_, 0, size);
      buf_.erase(0, size + 2);
    }
  } else if (!cl.empty()) {
    std::size_t n = std::stoul(cl);
    while (buf_.size() < n)
      if (!fill()) return std::nullopt;
    r.body = buf_.substr(0, n);
    buf_.erase(0, n);
  } else {
    while (fill()) {
    }
    r.body = std::move(buf_);
    buf_.clear();
  }
  return r;
}

std::string raw_client::read_all() {
  while (fill()) {
  }
  std::string out = std::move(buf_);
  buf_.clear();
  return out;
}

bool raw_client::wait_closed() {
  char tmp[4096];
  for (;;) {
    const ssize_t n = retry_eintr(timeout_, [&] { return ::recv(fd_, tmp, sizeof tmp, 0); });
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET || errno == EPIPE;
  }
}

long long metric_in(const std::optional<http_response>& r, std::string_view kind, std::string_view name) {
  if (!r || r->status != 200) return -1;
  auto doc = json::parse(r->body);
  if (!doc) return -1;
  const auto* g = doc.value().find(kind);
  const auto* v = g ? g->find(name) : nullptr;
  return v ? v->as_int64().value_or(-1) : -1;
}

namespace {

long long metric(std::uint16_t port, std::string_view kind, std::string_view name) {
  return metric_in(http_request(port, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n"), kind, name);
}

}  // namespace

long long gauge(std::uint16_t port, std::string_view name) { return metric(port, "gauges", name); }

long long counter(std::uint16_t port, std::string_view name) { return metric(port, "counters", name); }

std::optional<http_response> http_request(std::uint16_t port, std::string_view raw_request) {
  raw_client c(port);
  if (!c.send(raw_request)) return std::nullopt;
  return c.read_response(raw_request.substr(0, 5) == "HEAD ");
}

std::string make_request(std::string_view method, std::string_view target, std::string_view body,
                         std::string_view extra_headers) {
  std::string r;
  r.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: test\r\n");
  r.append(extra_headers);
  if (!body.empty() || method == "POST" || method == "PUT")
    r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  r.append("\r\n").append(body);
  return r;
}

std::size_t rss_bytes() { return core::resident_bytes(); }

std::string gzip_bytes(std::string_view in, int level) {
  z_stream z{};
  deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  std::uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

bool accepts_connections(std::uint16_t port) {
  try {
    raw_client c(port, std::chrono::milliseconds(1000));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string find_haproxy() { return find_program("haproxy"); }

}  // namespace gateway::test
