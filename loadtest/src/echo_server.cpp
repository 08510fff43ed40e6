#include "loadtest/src/echo_server.hpp"

#include "loadtest/src/http1_parser.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <malloc.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

namespace loadtest {
namespace {

constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);
constexpr std::size_t read_buffer_size = 8 * 1024;  // also the longest request head accepted
constexpr std::size_t echo_keep_capacity = 1024 * 1024;

class reuse_port {
 public:
  template <typename Protocol>
  int level(const Protocol&) const noexcept { return SOL_SOCKET; }
  template <typename Protocol>
  int name(const Protocol&) const noexcept { return SO_REUSEPORT; }
  template <typename Protocol>
  const int* data(const Protocol&) const noexcept { return &value_; }
  template <typename Protocol>
  std::size_t size(const Protocol&) const noexcept { return sizeof(value_); }

 private:
  int value_ = 1;
};

// The fixed answers, formatted once.
struct canned_responses {
  std::string keep_alive;     // HTTP/1.1 default persistence
  std::string keep_alive_10;  // to an HTTP/1.0 request that asked for keep-alive
  std::string close;
  std::size_t keep_alive_head = 0, keep_alive_10_head = 0, close_head = 0;  // head lengths, for HEAD

  explicit canned_responses(std::uint64_t body_size) {
    std::string body(body_size, 'x');
    if (body_size >= 2) body.replace(0, 2, "ok");
    const auto make = [&](const char* connection, std::size_t& head_len) {
      std::string r = "HTTP/1.1 200 OK\r\nServer: echo_backend\r\nContent-Type: text/plain\r\nContent-Length: ";
      r += std::to_string(body_size);
      r += "\r\n";
      r += connection;
      r += "\r\n";
      head_len = r.size();
      return r + body;
    };
    keep_alive = make("", keep_alive_head);
    keep_alive_10 = make("Connection: keep-alive\r\n", keep_alive_10_head);
    close = make("Connection: close\r\n", close_head);
  }
};

constexpr std::string_view continue_100 = "HTTP/1.1 100 Continue\r\n\r\n";

std::string_view error_response(int status) {
  switch (status) {
    case 413: return "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    case 431: return "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    default: return "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  }
}

// A connection's read buffer in pages of its own. From malloc, the buffers of
// 2,000 connections would be interleaved with Asio's per-socket reactor state,
// which Asio pools and never frees: every page holding one stays resident and
// RSS never returns to its baseline after a load. Unmapped pages always go back.
class page_buffer {
 public:
  explicit page_buffer(std::size_t size) noexcept
      : size_(size), data_(static_cast<char*>(::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))) {
    if (data_ == MAP_FAILED) data_ = nullptr;
  }
  ~page_buffer() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }
  page_buffer(const page_buffer&) = delete;
  page_buffer& operator=(const page_buffer&) = delete;
  char* data() const noexcept { return data_; }

 private:
  std::size_t size_;
  char* data_;
};

struct echo_worker;

// A connection's I/O objects, linked into its worker's list so stop() can
// close them. Lives in the connection coroutine's frame.
struct echo_connection {
  echo_connection(asio::ip::tcp::socket s, echo_worker& w);
  ~echo_connection();
  echo_connection(const echo_connection&) = delete;
  echo_connection& operator=(const echo_connection&) = delete;

  asio::ip::tcp::socket socket;
  asio::steady_timer timer;
  echo_worker& worker;
  echo_connection* prev = nullptr;
  echo_connection* next = nullptr;
};

struct echo_worker {
  echo_worker() : io(1), acceptor(io) {}
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor;
  echo_connection* connections = nullptr;  // intrusive list, this worker's thread only
  std::size_t live = 0;
  bool stopping = false;
  std::atomic<std::uint64_t> requests{0};
  std::thread thread;

  void close_all() {
    stopping = true;
    std::error_code ignored;
    acceptor.close(ignored);
    for (echo_connection* c = connections; c != nullptr; c = c->next) {
      c->socket.close(ignored);
      c->timer.cancel();
    }
  }
};

echo_connection::echo_connection(asio::ip::tcp::socket s, echo_worker& w)
    : socket(std::move(s)), timer(socket.get_executor()), worker(w), next(w.connections) {
  if (next) next->prev = this;
  w.connections = this;
  ++w.live;
}

echo_connection::~echo_connection() {
  if (prev) prev->next = next;
  else worker.connections = next;
  if (next) next->prev = prev;
  // When the last connection is gone, hand freed heap back to the kernel
  // (glibc keeps it otherwise), so a process sampler sees this backend's RSS
  // return to its baseline after a load. Posted: it runs after this
  // coroutine's frame is freed too.
  if (--worker.live == 0) asio::post(worker.io, [] { malloc_trim(0); });
}

struct shared_config {
  echo_options options;
  canned_responses canned;
};

asio::awaitable<bool> write_all(asio::ip::tcp::socket& s, std::string_view bytes) {
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(bytes.data(), bytes.size()), nothrow);
  (void)n;
  co_return !ec;
}

// Answers a request that cannot be served and closes. RFC 9112 9.6: closing
// with unread request bytes makes the kernel send RST, which can destroy the
// answer before the client reads it; so half-close, then read and discard
// what the client still sends, up to 256 KiB or 1 s.
asio::awaitable<void> refuse(echo_connection& c, int status, char* buf) {
  const bool sent = co_await write_all(c.socket, error_response(status));
  if (!sent) co_return;
  std::error_code ignored;
  c.socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  c.timer.expires_after(std::chrono::seconds(1));
  // The handler touches the connection only if the timer fired; when the
  // connection is gone first, the timer's destruction aborts the wait.
  c.timer.async_wait([&c](const std::error_code& ec) {
    if (!ec) {
      std::error_code e;
      c.socket.close(e);
    }
  });
  for (std::size_t drained = 0; drained < 256 * 1024;) {
    auto [ec, n] = co_await c.socket.async_read_some(asio::buffer(buf, read_buffer_size), nothrow);
    if (ec) break;
    drained += n;
  }
  c.timer.cancel();
}

// One connection: read a request (discarding or collecting its body), answer,
// repeat while keep-alive allows. Ends on EOF, error, a non-persistent
// request, or stop().
asio::awaitable<void> serve_connection(const shared_config& cfg, echo_worker& w, asio::ip::tcp::socket s) {
  echo_connection c(std::move(s), w);
  if (w.stopping) co_return;
  const echo_options& o = cfg.options;
  const page_buffer buffer(read_buffer_size);
  char* const buf = buffer.data();
  if (buf == nullptr) co_return;  // out of memory: drop this connection only
  std::size_t begin = 0, end = 0;
  http1_parser parser(message_kind::request, read_buffer_size);
  std::string body;  // echo mode only
  std::array<char, 192> echo_head{};

  for (;;) {
    parser.reset();
    body.clear();
    bool sent_continue = false;
    // Read one request.
    for (;;) {
      const parse_step step = parser.parse(std::string_view(buf + begin, end - begin));
      begin += step.consumed;
      if (step.status == parse_status::complete) break;
      if (step.status == parse_status::error) {
        co_await refuse(c, parser.error() == parse_error::head_too_large ? 431 : 400, buf);
        co_return;
      }
      if (step.status == parse_status::head_complete) {
        const bool has_body = parser.chunked() || parser.content_length().value_or(0) > 0;
        if (o.echo && parser.content_length().value_or(0) > o.max_body) {
          co_await refuse(c, 413, buf);
          co_return;
        }
        // RFC 9110 10.1.1: tell a client waiting on Expect: 100-continue to send the body.
        if (has_body && parser.expect_continue() && parser.version_minor() >= 1 && !sent_continue) {
          sent_continue = true;
          const bool sent = co_await write_all(c.socket, continue_100);
          if (!sent) co_return;
        }
        continue;
      }
      if (step.status == parse_status::body_data) {
        if (o.echo) {
          if (body.size() + step.body.size() > o.max_body) {
            co_await refuse(c, 413, buf);
            co_return;
          }
          body.append(step.body);
        }
        continue;
      }
      // need_more
      if (begin == end) {
        begin = end = 0;
      } else if (end == read_buffer_size) {
        if (begin == 0) {  // one head line fills the buffer
          co_await refuse(c, 431, buf);
          co_return;
        }
        std::memmove(buf, buf + begin, end - begin);
        end -= begin;
        begin = 0;
      }
      auto [ec, n] = co_await c.socket.async_read_some(asio::buffer(buf + end, read_buffer_size - end), nothrow);
      if (ec) co_return;  // EOF between requests, reset, or stop()
      end += n;
    }

    if (o.delay.count() > 0) {
      c.timer.expires_after(o.delay);
      auto [ec] = co_await c.timer.async_wait(nothrow);
      if (ec || w.stopping) co_return;
    }

    const bool keep_alive = parser.keep_alive();
    const bool head_only = parser.method() == "HEAD";
    bool ok;
    if (o.echo) {
      const int n = std::snprintf(echo_head.data(), echo_head.size(),
                                  "HTTP/1.1 200 OK\r\nServer: echo_backend\r\nContent-Type: application/octet-stream\r\n"
                                  "Content-Length: %zu\r\n%s\r\n",
                                  body.size(),
                                  !keep_alive ? "Connection: close\r\n"
                                  : parser.version_minor() == 0 ? "Connection: keep-alive\r\n"
                                                                : "");
      const std::array<asio::const_buffer, 2> parts{asio::buffer(echo_head.data(), static_cast<std::size_t>(n)),
                                                    asio::buffer(body.data(), head_only ? 0 : body.size())};
      auto [ec, written] = co_await asio::async_write(c.socket, parts, nothrow);
      (void)written;
      ok = !ec;
      if (body.capacity() > echo_keep_capacity) std::string().swap(body);
    } else {
      const std::string& r = !keep_alive ? cfg.canned.close
                             : parser.version_minor() == 0 ? cfg.canned.keep_alive_10
                                                           : cfg.canned.keep_alive;
      std::size_t len = r.size();
      if (head_only) {
        len = !keep_alive ? cfg.canned.close_head
              : parser.version_minor() == 0 ? cfg.canned.keep_alive_10_head
                                            : cfg.canned.keep_alive_head;
      }
      ok = co_await write_all(c.socket, std::string_view(r.data(), len));
    }
    if (!ok) co_return;
    w.requests.fetch_add(1, std::memory_order_relaxed);
    if (!keep_alive) {
      std::error_code ignored;
      c.socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
      co_return;
    }
  }
}

void log_escaped(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "echo_backend: connection failed: %s\n", ex.what());
  } catch (...) {
    std::fprintf(stderr, "echo_backend: connection failed\n");
  }
}

asio::awaitable<void> accept_loop(const shared_config& cfg, echo_worker& w) {
  asio::steady_timer pause(co_await asio::this_coro::executor);
  while (!w.stopping) {
    auto [ec, socket] = co_await w.acceptor.async_accept(nothrow);
    if (w.stopping || ec == asio::error::operation_aborted) break;
    if (ec) {
      // Out of descriptors or buffers: pause instead of spinning on the error.
      pause.expires_after(std::chrono::milliseconds(50));
      auto [pec] = co_await pause.async_wait(nothrow);
      (void)pec;
      continue;
    }
    std::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    asio::co_spawn(w.io, serve_connection(cfg, w, std::move(socket)), log_escaped);
    // Then whatever else is queued, without waiting: the loop gets one turn
    // per pass of the io_context's queue, which is long with thousands of
    // connections ready, so one accept per turn lets the listen queue grow.
    for (int i = 1; i < 256 && !w.stopping; ++i) {
      std::error_code aec;
      asio::ip::tcp::socket more = w.acceptor.accept(aec);
      if (aec) break;  // would_block: nothing queued (errors: the next async_accept sees them)
      more.set_option(asio::ip::tcp::no_delay(true), ignored);
      asio::co_spawn(w.io, serve_connection(cfg, w, std::move(more)), log_escaped);
    }
  }
}

}  // namespace

struct echo_server::impl {
  shared_config cfg;
  std::vector<std::unique_ptr<echo_worker>> workers;
  std::unique_ptr<asio::signal_set> signals;
  std::atomic<bool> stop_requested{false};

  explicit impl(const echo_options& o) : cfg{o, canned_responses(o.response_size)} {}
};

echo_server::echo_server(const echo_options& options) : impl_(std::make_unique<impl>(options)) {
  const unsigned threads = std::max(1U, options.threads);
  asio::ip::tcp::endpoint ep = options.listen;
  for (unsigned i = 0; i < threads; ++i) {
    auto w = std::make_unique<echo_worker>();
    w->acceptor.open(ep.protocol());
    w->acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    if (threads > 1) w->acceptor.set_option(reuse_port{});
    w->acceptor.bind(ep);
    w->acceptor.listen(asio::socket_base::max_listen_connections);
    w->acceptor.non_blocking(true);  // accept_loop's synchronous accepts return would_block
    ep = w->acceptor.local_endpoint();  // later workers share the port picked first
    impl_->workers.push_back(std::move(w));
  }
}

echo_server::~echo_server() {
  stop();
  for (auto& w : impl_->workers)
    if (w->thread.joinable()) w->thread.join();
}

asio::ip::tcp::endpoint echo_server::local_endpoint() const { return impl_->workers.front()->acceptor.local_endpoint(); }

void echo_server::run(bool handle_signals) {
  auto& workers = impl_->workers;
  for (auto& w : workers) asio::co_spawn(w->io, accept_loop(impl_->cfg, *w), log_escaped);
  if (handle_signals) {
    impl_->signals = std::make_unique<asio::signal_set>(workers.front()->io, SIGINT, SIGTERM);
    impl_->signals->async_wait([this](const std::error_code& ec, int) {
      if (!ec) stop();
    });
  }
  for (std::size_t i = 1; i < workers.size(); ++i) workers[i]->thread = std::thread([w = workers[i].get()] { w->io.run(); });
  workers.front()->io.run();
  for (std::size_t i = 1; i < workers.size(); ++i) workers[i]->thread.join();
}

void echo_server::stop() {
  if (impl_->stop_requested.exchange(true)) return;
  for (std::size_t i = 0; i < impl_->workers.size(); ++i) {
    echo_worker* w = impl_->workers[i].get();
    asio::post(w->io, [this, w, first = i == 0] {
      w->close_all();
      if (first && impl_->signals) {
        std::error_code ignored;
        impl_->signals->cancel(ignored);
      }
    });
  }
}

std::uint64_t echo_server::requests_served() const {
  std::uint64_t n = 0;
  for (const auto& w : impl_->workers) n += w->requests.load(std::memory_order_relaxed);
  return n;
}

}  // namespace loadtest
