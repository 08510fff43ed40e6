#include "tests/integration/proxy/recording_backend.hpp"

#include <sys/socket.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cctype>
#include <stop_token>

namespace gateway::test {

namespace {
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Content-Length of a request head (the proxy always frames bodies so).
std::uint64_t content_length_of(std::string_view head) {
  std::string h = lower(head);
  auto pos = h.find("\r\ncontent-length:");
  if (pos == std::string::npos) return 0;
  pos += 17;
  while (pos < h.size() && h[pos] == ' ') ++pos;
  return std::stoull(h.substr(pos, h.find("\r\n", pos) - pos));
}
}  // namespace

std::string ok_response(std::string_view body, std::string_view extra_headers) {
  std::string r = "HTTP/1.1 200 OK\r\n";
  r.append(extra_headers);
  r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
  r.append(body);
  return r;
}

recording_backend::recording_backend() {
  script_ = [](const recorded_request&) { return reply{ok_response("ok")}; };
  asio::ip::tcp::endpoint ep(asio::ip::address_v4::loopback(), 0);
  acceptor_.open(ep.protocol());
  acceptor_.bind(ep);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(io_, accept_loop(), asio::detached);
  thread_ = std::jthread([this](std::stop_token st) {
    std::stop_callback on_stop(st, [this] {
      asio::post(io_, [this] {
        stopping_ = true;
        std::error_code ignored;
        acceptor_.close(ignored);
        for (auto* s : sockets_) s->close(ignored);
      });
    });
    io_.run();
  });
}

recording_backend::~recording_backend() { stop(); }

void recording_backend::stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
}

void recording_backend::set_script(script s) {
  std::lock_guard lock(mu_);
  script_ = std::move(s);
}

std::vector<recorded_request> recording_backend::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::size_t recording_backend::request_count() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

asio::awaitable<void> recording_backend::accept_loop() {
  std::size_t next_id = 0;
  for (;;) {
    auto [ec, s] = co_await acceptor_.async_accept(use_nothrow);
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) continue;
    accepted_.fetch_add(1);
    asio::co_spawn(io_, serve(std::move(s), ++next_id), asio::detached);
  }
}

asio::awaitable<bool> recording_backend::send_generated(asio::ip::tcp::socket& s, std::uint64_t n) {
  std::string block(64 * 1024 + 251, '\0');
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = pattern_byte(i);
  std::uint64_t sent = 0;
  while (sent < n) {
    std::size_t off = static_cast<std::size_t>(sent % 251);
    std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(64 * 1024, n - sent));
    auto [ec, w] = co_await asio::async_write(s, asio::buffer(block.data() + off, len), use_nothrow);
    if (ec) co_return false;
    sent += w;
  }
  co_return true;
}

asio::awaitable<void> recording_backend::serve(asio::ip::tcp::socket s, std::size_t id) {
  if (stopping_) co_return;
  sockets_.push_front(&s);
  auto self = sockets_.begin();
  open_.fetch_add(1);
  struct untrack {
    recording_backend& b;
    std::list<asio::ip::tcp::socket*>::iterator it;
    ~untrack() {
      b.sockets_.erase(it);
      b.open_.fetch_sub(1);
    }
  } guard{*this, self};

  std::string in;
  std::size_t index = 0;
  char tmp[64 * 1024];
  for (;;) {
    std::size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(tmp), use_nothrow);
      if (ec) co_return;
      in.append(tmp, n);
    }
    recorded_request r;
    r.head = in.substr(0, end + 4);
    std::uint64_t len = content_length_of(r.head);
    while (in.size() < end + 4 + len) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(tmp), use_nothrow);
      if (ec) co_return;
      in.append(tmp, n);
    }
    r.body = in.substr(end + 4, len);
    r.raw = in.substr(0, end + 4 + len);
    in.erase(0, end + 4 + len);
    r.method = r.head.substr(0, r.head.find(' '));
    auto sp = r.head.find(' ') + 1;
    r.target = r.head.substr(sp, r.head.find(' ', sp) - sp);
    r.connection = id;
    r.index_on_connection = index++;
    script sc;
    {
      std::lock_guard lock(mu_);
      if (recording_) requests_.push_back(r);
      ++counted_;
      sc = script_;
    }
    reply rep = sc(r);
    if (rep.delay.count() > 0) {
      asio::steady_timer wait(s.get_executor(), rep.delay);
      auto [ec] = co_await wait.async_wait(use_nothrow);
      if (ec || stopping_) co_return;
    }
    if (!rep.bytes.empty()) {
      auto [ec, n] = co_await asio::async_write(s, asio::buffer(rep.bytes), use_nothrow);
      (void)n;
      if (ec) co_return;
    }
    if (rep.generated_body > 0) {
      const bool sent = co_await send_generated(s, rep.generated_body);
      if (!sent) co_return;
    }
    const bool late = rep.late_delay.count() > 0 || !rep.late_bytes.empty();
    if (rep.late_delay.count() > 0) {
      asio::steady_timer wait(s.get_executor(), rep.late_delay);
      auto [ec] = co_await wait.async_wait(use_nothrow);
      if (ec || stopping_) co_return;
    }
    if (!rep.late_bytes.empty()) {
      auto [ec, n] = co_await asio::async_write(s, asio::buffer(rep.late_bytes), use_nothrow);
      (void)n;
      if (ec) co_return;
    }
    std::error_code ignored;
    if (late && rep.after != reply::then::close) late_.fetch_add(1);
    switch (rep.after) {
      case reply::then::keep_open:
        break;
      case reply::then::close:
        s.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        if (late) late_.fetch_add(1);
        // Wait for the peer's close so the FIN is not followed by a reset.
        for (;;) {
          auto [ec, n] = co_await s.async_read_some(asio::buffer(tmp), use_nothrow);
          (void)n;
          if (ec) break;
        }
        co_return;
      case reply::then::reset: {
        linger l{1, 0};
        ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
        s.close(ignored);
        co_return;
      }
      case reply::then::hang:
        for (;;) {
          auto [ec, n] = co_await s.async_read_some(asio::buffer(tmp), use_nothrow);
          (void)n;
          if (ec) co_return;
        }
    }
  }
}

std::uint16_t closed_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  std::uint16_t p = a.local_endpoint().port();
  a.close();
  return p;
}

}  // namespace gateway::test
