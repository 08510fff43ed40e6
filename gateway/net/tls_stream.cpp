#include "gateway/net/tls_stream.hpp"

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gateway/net/interrupt.hpp"
#include "gateway/net/tls_context.hpp"

namespace gateway::net {

namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
// The largest TLS record's payload (RFC 8446 section 5.1): pieces are
// gathered up to it, larger ones are written as they are.
constexpr std::size_t record_payload = 16384;
// The write scratch buffer is sized to what one write gathers (a response
// head and a small body: a few hundred bytes) and kept between writes up to
// this capacity; a larger one (a large response gathered into full records)
// is freed after its write, so a connection between requests does not hold
// 16 KiB among the blocks that outlive it.
constexpr std::size_t scratch_keep = 4096;

// What an OpenSSL call's failure asks for: wait for the socket and call
// again, end of stream, or an error (the thread's error queue is emptied,
// so it cannot be blamed on a later call).
enum class want { read, write, eof, error };

want classify(SSL* ssl, int ret) noexcept {
  switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
      return want::read;
    case SSL_ERROR_WANT_WRITE:
      return want::write;
    case SSL_ERROR_ZERO_RETURN:
      return want::eof;
    default:
      ERR_clear_error();
      return want::error;
  }
}

asio::awaitable<std::error_code> wait_for(asio::ip::tcp::socket& s, want w) {
  auto [ec] = co_await s.async_wait(w == want::read ? asio::socket_base::wait_read : asio::socket_base::wait_write,
                                    use_nothrow);
  co_return ec;
}

std::error_code protocol_error() { return std::make_error_code(std::errc::protocol_error); }

}  // namespace

tls_stream::tls_stream(asio::ip::tcp::socket& socket, SSL* ssl, std::shared_ptr<const tls_context> ctx)
    : socket_(&socket), ssl_(ssl), ctx_(std::move(ctx)) {
  std::error_code ignored;
  socket_->non_blocking(true, ignored);
  SSL_set_fd(ssl_, static_cast<int>(socket_->native_handle()));
  SSL_set_accept_state(ssl_);
}

tls_stream::~tls_stream() { SSL_free(ssl_); }

bool tls_stream::resumed() const noexcept { return SSL_session_reused(ssl_) == 1; }

std::string_view tls_stream::server_name() const noexcept {
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name ? std::string_view(name) : std::string_view{};
}

asio::awaitable<std::error_code> tls_stream::handshake() {
  for (;;) {
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      handshake_done_ = true;
      co_return std::error_code{};
    }
    const want w = classify(ssl_, r);
    if (w == want::eof) co_return asio::error::eof;
    if (w == want::error) co_return protocol_error();
    const std::error_code ec = co_await wait_for(*socket_, w);
    if (ec) co_return ec;
  }
}

asio::awaitable<http::byte_stream::io_result> tls_stream::read_some(asio::mutable_buffer into) {
  for (;;) {
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, into.data(), into.size(), &n);
    if (r == 1) co_return io_result{std::error_code{}, n};
    const want w = classify(ssl_, r);
    if (w == want::eof) co_return io_result{asio::error::eof, 0};
    if (w == want::error) co_return io_result{protocol_error(), 0};
    // A read may have to write (a TLS 1.3 KeyUpdate answer): wait for what
    // OpenSSL asks for, then call again with the same arguments.
    const std::error_code ec = co_await wait_for(*socket_, w);
    if (ec) co_return io_result{ec, 0};
  }
}

asio::awaitable<std::error_code> tls_stream::write_bytes(const char* p, std::size_t n) {
  if (n == 0) co_return std::error_code{};
  // Without SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_write_ex writes all `n`
  // bytes or fails; after a failure that asks to wait, the call is repeated
  // with the same buffer and length (SSL_write(3)).
  for (;;) {
    std::size_t written = 0;
    const int r = SSL_write_ex(ssl_, p, n, &written);
    if (r == 1) co_return std::error_code{};
    const want w = classify(ssl_, r);
    if (w == want::eof) co_return asio::error::eof;
    if (w == want::error) co_return protocol_error();
    const std::error_code ec = co_await wait_for(*socket_, w);
    if (ec) co_return ec;
  }
}

asio::awaitable<std::error_code> tls_stream::flush_scratch() {
  if (scratch_.empty()) co_return std::error_code{};
  auto ec = co_await write_bytes(scratch_.data(), scratch_.size());
  scratch_.clear();
  co_return ec;
}

asio::awaitable<http::byte_stream::io_result> tls_stream::write(std::span<const asio::const_buffer> bufs) {
  std::size_t total = 0;
  std::size_t pieces = 0;
  const asio::const_buffer* only = nullptr;
  for (const auto& b : bufs) {
    if (b.size() == 0) continue;
    total += b.size();
    ++pieces;
    only = &b;
  }
  if (pieces == 0) co_return io_result{std::error_code{}, 0};
  if (pieces == 1) {
    auto ec = co_await write_bytes(static_cast<const char*>(only->data()), only->size());
    co_return io_result{ec, ec ? 0 : total};
  }
  const std::size_t gather = std::min(total, record_payload);
  if (scratch_.capacity() < gather) scratch_.reserve(gather);
  for (const auto& b : bufs) {
    if (b.size() == 0) continue;
    const char* p = static_cast<const char*>(b.data());
    if (scratch_.size() + b.size() > record_payload) {
      const std::error_code ec = co_await flush_scratch();
      if (ec) co_return io_result{ec, 0};
    }
    if (b.size() >= record_payload) {
      const std::error_code ec = co_await write_bytes(p, b.size());
      if (ec) co_return io_result{ec, 0};
    } else {
      scratch_.append(p, b.size());
    }
  }
  const std::error_code ec = co_await flush_scratch();
  if (scratch_.capacity() > scratch_keep) std::string().swap(scratch_);
  if (ec) co_return io_result{ec, 0};
  co_return io_result{std::error_code{}, total};
}

asio::awaitable<http::byte_stream::io_result> tls_stream::write_all(asio::const_buffer bytes) {
  auto ec = co_await write_bytes(static_cast<const char*>(bytes.data()), bytes.size());
  co_return io_result{ec, ec ? 0 : bytes.size()};
}

void tls_stream::shutdown_send() noexcept {
  // close_notify (RFC 8446 section 6.1), best effort on the non-blocking
  // socket: a full send buffer just loses it, and the FIN follows anyway.
  if (handshake_done_ && !sent_close_notify_) {
    sent_close_notify_ = true;
    if (SSL_shutdown(ssl_) < 0) ERR_clear_error();
  }
  std::error_code ignored;
  socket_->shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

void tls_stream::interrupt() noexcept { net::interrupt(*socket_); }

void tls_stream::release_idle() noexcept {
  std::string().swap(scratch_);
  // Record buffers that still hold nothing (refused when they hold data).
  SSL_free_buffers(ssl_);
}

}  // namespace gateway::net
