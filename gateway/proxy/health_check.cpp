#include "gateway/proxy/health_check.hpp"

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/write.hpp>
#include <exception>
#include <openssl/ssl.h>

#include "gateway/net/interrupt.hpp"

namespace gateway::proxy {

namespace {
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
using namespace asio::experimental::awaitable_operators;
}  // namespace

class health_checker {
 public:
  health_checker(asio::io_context& io, asio::ip::tcp::endpoint ep, std::string host,
                 std::shared_ptr<member_state> member, health_check_options opts, std::shared_ptr<upstream_tls> tls,
                 std::string tls_host)
      : tls_(std::move(tls)),
        tls_host_(std::move(tls_host)),
        io_(io),
        socket_(io),
        timer_(io),
        deadline_(io),
        endpoint_(ep),
        request_("GET " + opts.path + " HTTP/1.1\r\nHost: " + host +
                 "\r\nUser-Agent: gateway-health-check\r\nConnection: close\r\n\r\n"),
        member_(std::move(member)),
        opts_(std::move(opts)) {}

  static asio::awaitable<void> run(std::shared_ptr<health_checker> self) {
    health_checker& c = *self;
    while (!c.stopped_) {
      c.timer_.expires_after(c.opts_.interval);
      auto [ec] = co_await c.timer_.async_wait(use_nothrow);
      (void)ec;
      if (c.stopped_) break;
      const bool ok = co_await c.probe();
      if (c.stopped_) break;
      c.account(ok);
    }
  }

  void account(bool ok) noexcept {
    if (ok) {
      failed_ = 0;
      if (member_->down() && ++passed_ >= opts_.healthy) member_->set_down(false);
    } else {
      passed_ = 0;
      member_->checks_failed.fetch_add(1, std::memory_order_relaxed);
      if (!member_->down() && ++failed_ >= opts_.unhealthy) member_->set_down(true);
    }
  }

  void stop() noexcept {
    stopped_ = true;
    timer_.cancel();
    deadline_.cancel();
    net::interrupt(sock());  // the probe closes it when its operation returns
  }

  asio::io_context& io() noexcept { return io_; }
  bool started_ = false;
  bool stopped_ = false;

 private:
  // The TCP socket of the current probe (under its TLS stream for https).
  asio::ip::tcp::socket& sock() noexcept { return stream_ ? stream_->next_layer() : socket_; }

  // The operation on whichever stream the probe has, chosen outside the
  // coroutine (GCC 12 miscompiles a conditional expression inside a
  // co_await expression).
  auto send_request() {
    return stream_ ? asio::async_write(*stream_, asio::buffer(request_), use_nothrow)
                   : asio::async_write(socket_, asio::buffer(request_), use_nothrow);
  }
  auto read_some(asio::mutable_buffer b) {
    return stream_ ? stream_->async_read_some(b, use_nothrow) : socket_.async_read_some(b, use_nothrow);
  }

  // One check: connect (and the TLS handshake for https), send, read until
  // the status line is in, all within the timeout; then close (the request
  // said Connection: close).
  asio::awaitable<bool> probe() {
    finish(false);
    if (tls_) stream_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(io_, tls_->context());
    deadline_.expires_after(opts_.timeout);
    auto connected = co_await (sock().async_connect(endpoint_, use_nothrow) || deadline_.async_wait(use_nothrow));
    if (connected.index() != 0 || std::get<0>(std::get<0>(connected)) || stopped_) co_return finish(false);
    if (stream_) {
      if (!tls_->prepare(stream_->native_handle(), tls_host_, sessions_)) co_return finish(false);
      auto shaken = co_await (stream_->async_handshake(asio::ssl::stream_base::client, use_nothrow) ||
                              deadline_.async_wait(use_nothrow));
      if (shaken.index() != 0 || std::get<0>(std::get<0>(shaken)) || stopped_) co_return finish(false);
    }
    auto sent = co_await (send_request() || deadline_.async_wait(use_nothrow));
    if (sent.index() != 0 || std::get<0>(std::get<0>(sent)) || stopped_) co_return finish(false);
    std::array<char, 32> buf{};
    std::size_t filled = 0;
    while (filled < 12) {  // "HTTP/1.1 200"
      auto got = co_await (read_some(asio::buffer(buf.data() + filled, buf.size() - filled)) ||
                           deadline_.async_wait(use_nothrow));
      if (got.index() != 0 || std::get<0>(std::get<0>(got)) || stopped_) co_return finish(false);
      filled += std::get<1>(std::get<0>(got));
    }
    const std::string_view line(buf.data(), filled);
    co_return finish(line.substr(0, 5) == "HTTP/" && line[8] == ' ' && line[9] == '2');
  }

  bool finish(bool ok) noexcept {
    std::error_code ignored;
    if (stream_) {
      // Keeps the session resumable (see upstream_pool.cpp's close()).
      SSL_set_shutdown(stream_->native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
      stream_->next_layer().close(ignored);
      stream_.reset();
    }
    socket_.close(ignored);
    return ok;
  }

  std::shared_ptr<upstream_tls> tls_;  // null: plain http
  std::string tls_host_;
  tls_session_cache sessions_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> stream_;  // the current probe's, https only
  asio::io_context& io_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  asio::steady_timer deadline_;
  asio::ip::tcp::endpoint endpoint_;
  std::string request_;
  std::shared_ptr<member_state> member_;
  health_check_options opts_;
  std::uint32_t passed_ = 0;
  std::uint32_t failed_ = 0;
};

std::shared_ptr<health_checker> make_health_checker(asio::io_context& io, asio::ip::tcp::endpoint endpoint,
                                                    std::string host, std::shared_ptr<member_state> member,
                                                    health_check_options opts, std::shared_ptr<upstream_tls> tls,
                                                    std::string tls_host) {
  return std::make_shared<health_checker>(io, endpoint, std::move(host), std::move(member), std::move(opts),
                                          std::move(tls), std::move(tls_host));
}

void start(const std::shared_ptr<health_checker>& c) {
  if (c->started_ || c->stopped_) return;
  c->started_ = true;
  // The coroutine owns a reference: the checker lives until it ends. An
  // exception (none is expected: every wait is error-coded) ends it quietly.
  asio::co_spawn(c->io(), health_checker::run(c), [](std::exception_ptr) {});
}

void stop(health_checker& c) noexcept { c.stop(); }

}  // namespace gateway::proxy
