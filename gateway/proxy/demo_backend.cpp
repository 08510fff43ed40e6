#include "gateway/proxy/demo_backend.hpp"

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <cstring>
#include <list>
#include <stop_token>
#include <thread>

#include "gateway/core/arena.hpp"
#include "gateway/http/request_parser.hpp"
#include "gateway/json/writer.hpp"
#include "gateway/net/interrupt.hpp"

namespace gateway::proxy {

namespace {
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
constexpr std::size_t max_head = 16 * 1024;

bool count_bytes(void* ctx, const char*, std::size_t len) {
  *static_cast<std::uint64_t*>(ctx) += len;
  return true;
}
}  // namespace

struct demo_backend::impl {
  asio::io_context io{1};
  asio::ip::tcp::acceptor acceptor{io};
  std::list<asio::ip::tcp::socket*> sockets;  // open connections, touched on the io thread only
  std::atomic<std::uint64_t> served{0};
  std::atomic<std::uint64_t> open{0};
  std::uint16_t port = 0;
  bool stopping = false;  // io thread only
  std::jthread thread;

  // Ends every pending operation; each coroutine closes its own socket on
  // the way out (closing under a pending operation: net/interrupt.hpp).
  void shutdown() {
    stopping = true;
    std::error_code ignored;
    acceptor.cancel(ignored);
    for (auto* s : sockets) net::interrupt(*s);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
      if (ec == asio::error::operation_aborted || stopping) {
        std::error_code ignored;
        acceptor.close(ignored);
        co_return;
      }
      if (ec) continue;
      asio::co_spawn(io, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(asio::ip::tcp::socket socket) {
    if (stopping) co_return;  // accepted just before the stop: the socket closes here
    sockets.push_front(&socket);
    auto self = sockets.begin();
    open.fetch_add(1, std::memory_order_relaxed);
    struct untrack {
      impl& b;
      std::list<asio::ip::tcp::socket*>::iterator it;
      ~untrack() {
        b.sockets.erase(it);
        b.open.fetch_sub(1, std::memory_order_relaxed);
      }
    } guard{*this, self};

    std::array<char, 2 * max_head> in;
    std::size_t filled = 0;
    core::arena mem;
    http::request_parser parser;
    std::string out;
    for (;;) {
      mem.reset();
      http::request req;
      req.headers = http::header_list(mem);
      http::head_result head;
      for (;;) {
        if (filled > 0) {
          head = parser.parse_head(std::string_view(in.data(), filled), req, {max_head, 100});
          if (head.what != http::head_result::kind::incomplete) break;
        }
        if (filled == in.size()) co_return;
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(in.data() + filled, in.size() - filled), use_nothrow);
        if (ec) co_return;
        filled += n;
      }
      if (head.what == http::head_result::kind::error) {
        static constexpr std::string_view bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        co_await asio::async_write(socket, asio::buffer(bad), use_nothrow);
        co_return;
      }
      // The response is written before the body is read (the body is only
      // counted), so build it now, while the head's views are valid.
      std::uint64_t body_length = 0;
      std::size_t used = head.head_size;
      if (!head.chunked) {
        std::uint64_t want = head.content_length;
        std::uint64_t here = std::min<std::uint64_t>(want, filled - used);
        used += static_cast<std::size_t>(here);
        body_length = here;
        std::array<char, 16 * 1024> sink;
        while (body_length < want) {
          auto [ec, n] = co_await socket.async_read_some(
              asio::buffer(sink.data(), static_cast<std::size_t>(std::min<std::uint64_t>(sink.size(), want - body_length))),
              use_nothrow);
          if (ec) co_return;
          body_length += n;
        }
      } else {
        for (;;) {
          auto r = parser.feed_chunked(std::string_view(in.data() + used, filled - used), &count_bytes, &body_length,
                                       ~std::uint64_t{0});
          if (r.what == http::chunk_result::kind::complete) {
            used += r.consumed;
            break;
          }
          if (r.what != http::chunk_result::kind::need_more) co_return;
          // All consumed: keep the head (the request views point into it).
          filled = head.head_size;
          used = filled;
          if (filled == in.size()) co_return;
          auto [ec, n] = co_await socket.async_read_some(asio::buffer(in.data() + filled, in.size() - filled), use_nothrow);
          if (ec) co_return;
          filled += n;
        }
      }

      std::string body;
      body.append("{\"backend\":\"gateway demo backend\",\"method\":");
      json::append_string(body, req.method);
      body.append(",\"path\":");
      json::append_string(body, req.path);
      body.append(",\"query\":");
      json::append_string(body, req.query);
      body.append(",\"headers\":[");
      bool first = true;
      for (const auto& f : req.headers) {
        if (!first) body.push_back(',');
        first = false;
        body.push_back('[');
        json::append_string(body, f.name);
        body.push_back(',');
        json::append_string(body, f.value);
        body.push_back(']');
      }
      body.append("],\"body_length\":");
      json::append_number(body, body_length);
      body.append("}\n");

      const bool keep_alive = req.keep_alive;
      out.clear();
      out.append("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ");
      out.append(std::to_string(body.size()));
      out.append(keep_alive ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
      out.append(body);
      auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(out), use_nothrow);
      (void)wn;
      if (wec) co_return;
      served.fetch_add(1, std::memory_order_relaxed);
      if (!keep_alive) {
        std::error_code ignored;
        socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        co_return;
      }
      std::memmove(in.data(), in.data() + used, filled - used);
      filled -= used;
    }
  }
};

demo_backend::demo_backend(std::uint16_t port) : impl_(std::make_unique<impl>()) {
  asio::ip::tcp::endpoint ep(asio::ip::address_v4::loopback(), port);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  impl* b = impl_.get();
  impl_->thread = std::jthread([b](std::stop_token st) {
    // Stop is handled on the backend's own thread: close everything, and the
    // io_context runs dry once the coroutines have seen their sockets close.
    std::stop_callback on_stop(st, [b] { asio::post(b->io, [b] { b->shutdown(); }); });
    b->io.run();
  });
}

demo_backend::~demo_backend() { stop(); }

std::uint16_t demo_backend::port() const noexcept { return impl_->port; }

std::string demo_backend::url() const { return "http://127.0.0.1:" + std::to_string(impl_->port); }

void demo_backend::stop() noexcept {
  if (impl_->thread.joinable()) {
    impl_->thread.request_stop();
    impl_->thread.join();
  }
}

std::uint64_t demo_backend::requests_served() const noexcept { return impl_->served.load(std::memory_order_relaxed); }

std::uint64_t demo_backend::open_connections() const noexcept { return impl_->open.load(std::memory_order_relaxed); }

}  // namespace gateway::proxy
