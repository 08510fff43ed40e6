#include "gateway/net/tls_stream.hpp"

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gateway/core/coarse_clock.hpp"
#include "gateway/net/interrupt.hpp"
#include "gateway/net/tls_buffer_cache.hpp"
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
// The input buffer: what one receive takes when OpenSSL asks for a record
// header or a small record (a request, a ClientHello), and at most one
// record buffer of tls_buffer_cache (a TLS 1.2 record's 16 KiB of payload
// plus expansion arrives in two receives at worst).
constexpr std::size_t input_small = 2048;
constexpr std::size_t input_large = tls_buffer_cache::block_size;
// The output buffer takes records up to this many bytes before OpenSSL is
// told to wait (SSL_write then asks to be called again after a flush): a
// large body is encrypted and sent in slices of about four records.
constexpr std::size_t out_limit = 64 * 1024;

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

std::error_code protocol_error() { return std::make_error_code(std::errc::protocol_error); }

}  // namespace

namespace {

// A BIO method of the stream's input or output, with `ctrl` and the create and
// destroy every such BIO shares: it keeps no state of its own (its data is
// the stream), so create only marks it ready. Null when out of memory.
BIO_METHOD* new_stream_bio_method(const char* name, long (*ctrl)(BIO*, int, long, void*)) {
  BIO_METHOD* meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, name);
  if (meth == nullptr) return nullptr;
  BIO_meth_set_ctrl(meth, ctrl);
  BIO_meth_set_create(meth, [](BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  });
  BIO_meth_set_destroy(meth, [](BIO*) { return 1; });
  return meth;
}

}  // namespace

// OpenSSL's read side: a source BIO that hands out the stream's input
// buffer and asks for a retry (the stream then receives) when it is empty.
struct tls_input_bio {
  static int read(BIO* b, char* out, std::size_t n, std::size_t* got) {
    auto* s = static_cast<tls_stream*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    const std::size_t have = s->in_end_ - s->in_begin_;
    if (have == 0) {
      *got = 0;
      if (s->in_eof_) return 0;
      s->in_asked_ = n;
      BIO_set_retry_read(b);
      return 0;
    }
    const std::size_t k = std::min(n, have);
    std::memcpy(out, s->in_ + s->in_begin_, k);
    s->in_begin_ += k;
    if (s->in_begin_ == s->in_end_) s->in_begin_ = s->in_end_ = 0;
    *got = k;
    return 1;
  }
  static long ctrl(BIO* b, int cmd, long, void*) {
    auto* s = static_cast<tls_stream*>(BIO_get_data(b));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_PENDING:
        return static_cast<long>(s->in_end_ - s->in_begin_);
      case BIO_CTRL_EOF:
        return s->in_eof_ && s->in_begin_ == s->in_end_ ? 1 : 0;
      default:
        return 0;
    }
  }
  // One method for the process, made on first use (thread-safe static).
  static const BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* meth = new_stream_bio_method("gateway TLS input", ctrl);
      if (meth != nullptr) BIO_meth_set_read_ex(meth, read);
      return meth;
    }();
    return m;
  }
};

// OpenSSL's write side: a sink BIO that appends to the stream's output
// buffer, and asks for a retry (the stream then flushes) past out_limit.
struct tls_output_bio {
  static int write(BIO* b, const char* in, std::size_t n, std::size_t* put) {
    auto* s = static_cast<tls_stream*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    *put = 0;
    if (s->out_error_) return 0;
    if (!s->out_.empty() && s->out_.size() + n > out_limit) {
      BIO_set_retry_write(b);
      return 0;
    }
    try {
      s->out_.append(in, n);
    } catch (const std::bad_alloc&) {
      return 0;
    }
    *put = n;
    return 1;
  }
  static long ctrl(BIO* b, int cmd, long, void*) {
    auto* s = static_cast<tls_stream*>(BIO_get_data(b));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;  // the stream sends after each OpenSSL call
      case BIO_CTRL_WPENDING:
        return static_cast<long>(s->out_.size());
      default:
        return 0;
    }
  }
  static const BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* meth = new_stream_bio_method("gateway TLS output", ctrl);
      if (meth != nullptr) BIO_meth_set_write_ex(meth, write);
      return meth;
    }();
    return m;
  }
};

tls_stream::tls_stream(asio::ip::tcp::socket& socket, SSL* ssl, std::shared_ptr<const tls_context> ctx)
    : socket_(&socket), ssl_(ssl), ctx_(std::move(ctx)) {
  BIO* rbio = tls_input_bio::method() != nullptr ? BIO_new(tls_input_bio::method()) : nullptr;
  BIO* wbio = tls_output_bio::method() != nullptr ? BIO_new(tls_output_bio::method()) : nullptr;
  if (rbio == nullptr || wbio == nullptr) {
    // Out of memory: the handshake fails at once (not_enough_memory) and
    // the connection is closed; OpenSSL, with no BIO, reads and writes
    // nothing.
    BIO_free(rbio);
    BIO_free(wbio);
    no_bios_ = true;
  } else {
    BIO_set_data(rbio, this);
    BIO_set_data(wbio, this);
    SSL_set_bio(ssl_, rbio, wbio);
  }
  SSL_set_accept_state(ssl_);
}

tls_stream::~tls_stream() {
  SSL_free(ssl_);
  free_input();
}

void tls_stream::free_input() noexcept {
  if (in_ != nullptr) tls_buffer_cache::release(in_);
  in_ = nullptr;
  in_cap_ = in_begin_ = in_end_ = 0;
}

bool tls_stream::have_input() const noexcept { return in_begin_ != in_end_ || in_eof_ || SSL_has_pending(ssl_) == 1; }

bool tls_stream::begin_flush() noexcept {
  if (flushing_ || out_error_ || out_.empty()) return false;
  flushing_ = true;
  return true;
}

asio::const_buffer tls_stream::next_send() noexcept {
  if (out_.empty() || out_error_) return {};
  sending_.swap(out_);
  return asio::buffer(sending_);
}

void tls_stream::sent(const std::error_code& ec, std::size_t n) noexcept {
  if (ec) {
    out_error_ = ec;
    out_.clear();
    sending_.clear();
    return;
  }
  // What the socket did not take goes out before what OpenSSL added since.
  if (n < sending_.size()) {
    sending_.erase(0, n);
    sending_.append(out_);
    out_.clear();
    out_.swap(sending_);
  }
  sending_.clear();
}

std::error_code tls_stream::end_flush() noexcept {
  // One buffer is kept for the next response's records (up to
  // scratch_keep); the other exists only while a flush runs.
  if (out_.capacity() < sending_.capacity()) out_.swap(sending_);
  std::string().swap(sending_);
  if (out_.capacity() > scratch_keep) std::string().swap(out_);
  flushing_ = false;
  if (shutdown_after_flush_) {
    shutdown_after_flush_ = false;
    std::error_code ignored;
    socket_->shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
  return out_error_;
}

asio::awaitable<std::error_code> tls_stream::flush_out() {
  if (!begin_flush()) co_return out_error_;
  for (asio::const_buffer b = next_send(); b.size() > 0; b = next_send()) {
    auto [ec, n] = co_await socket_->async_write_some(b, use_nothrow);
    sent(ec, n);
  }
  co_return end_flush();
}

void tls_stream::send_now() noexcept {
  if (flushing_ || out_.empty() || out_error_) return;
  const int fd = static_cast<int>(socket_->native_handle());
  std::size_t done = 0;
  while (done < out_.size()) {
    const ssize_t k = ::send(fd, out_.data() + done, out_.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k <= 0) break;
    done += static_cast<std::size_t>(k);
  }
  out_.erase(0, done);
}

asio::mutable_buffer tls_stream::prepare_input() noexcept {
  const std::size_t want_bytes = std::min(std::max(in_asked_, input_small), input_large);
  in_asked_ = 0;
  // Empty here: a large buffer is kept while large records keep coming and
  // given back as soon as OpenSSL asks for a small one.
  if (in_cap_ < want_bytes || (in_cap_ > input_small && want_bytes == input_small)) {
    free_input();
    in_ = static_cast<char*>(tls_buffer_cache::allocate(want_bytes));
    if (in_ == nullptr) return {};
    in_cap_ = want_bytes;
  }
  return asio::buffer(in_, in_cap_);
}

std::error_code tls_stream::received(const std::error_code& ec, std::size_t n) noexcept {
  if (ec == asio::error::eof) {
    in_eof_ = true;
    return {};
  }
  if (ec) return ec;
  in_begin_ = 0;
  in_end_ = n;
  return {};
}

asio::awaitable<std::error_code> tls_stream::fill() {
  const asio::mutable_buffer into = prepare_input();
  if (into.size() == 0) co_return std::make_error_code(std::errc::not_enough_memory);
  auto [ec, n] = co_await socket_->async_read_some(into, use_nothrow);
  co_return received(ec, n);
}

bool tls_stream::resumed() const noexcept { return SSL_session_reused(ssl_) == 1; }

std::string_view tls_stream::server_name() const noexcept {
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name ? std::string_view(name) : std::string_view{};
}

asio::awaitable<std::error_code> tls_stream::handshake() {
  if (no_bios_) co_return std::make_error_code(std::errc::not_enough_memory);
  // Nothing to hand OpenSSL before the ClientHello arrives.
  if (!have_input()) {
    const std::error_code ec = co_await fill();
    if (ec) co_return ec;
  }
  for (;;) {
    const int r = SSL_do_handshake(ssl_);
    // The flight OpenSSL wrote (or its alert) goes out before anything else.
    if (!out_.empty()) {
      const std::error_code ec = co_await flush_out();
      if (ec) co_return ec;
    }
    if (r == 1) {
      handshake_done_ = true;
      co_return std::error_code{};
    }
    const want w = classify(ssl_, r);
    if (w == want::eof) co_return asio::error::eof;
    if (w == want::error) co_return protocol_error();
    if (w == want::read) {
      const std::error_code ec = co_await fill();
      if (ec) co_return ec;
    }
  }
}

asio::awaitable<http::byte_stream::io_result> tls_stream::read_some(asio::mutable_buffer into) {
  // Between requests nothing is buffered: receive first rather than let
  // SSL_read set up a record buffer only to find nothing. The receive is
  // written out here rather than through fill(): one coroutine frame per
  // read.
  bool receive = !have_input();
  for (;;) {
    if (receive) {
      const asio::mutable_buffer space = prepare_input();
      if (space.size() == 0) co_return io_result{std::make_error_code(std::errc::not_enough_memory), 0};
      auto [ec, got] = co_await socket_->async_read_some(space, use_nothrow);
      if (const std::error_code e = received(ec, got)) co_return io_result{e, 0};
    }
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, into.data(), into.size(), &n);
    // A read may write (a TLS 1.3 KeyUpdate answer, an alert).
    if (!out_.empty()) send_now();
    if (r == 1) {
      partial_since_ = std::chrono::steady_clock::time_point::max();
      co_return io_result{std::error_code{}, n};
    }
    const want w = classify(ssl_, r);
    // OpenSSL holds received bytes of a record it cannot finish yet.
    if (w == want::read && partial_since_ == std::chrono::steady_clock::time_point::max() && SSL_has_pending(ssl_) == 1)
      partial_since_ = core::coarse_steady_now();
    if (w == want::eof) co_return io_result{asio::error::eof, 0};
    if (w == want::error) co_return io_result{protocol_error(), 0};
    // Receive, then call again with the same arguments. With the stream's
    // BIOs a read only ever waits for input (its output is taken whole).
    if (w != want::read) co_return io_result{out_error_ ? out_error_ : protocol_error(), 0};
    receive = true;
  }
}

void tls_stream::append_close_notify() noexcept {
  close_with_write_ = false;
  if (!handshake_done_ || sent_close_notify_ || out_error_ || out_.size() + 64 > out_limit) return;
  // SSL_shutdown writes the alert into the output buffer (returning 0: the
  // peer's close_notify has not come); a failure leaves it to
  // shutdown_send(), which tries again.
  if (SSL_shutdown(ssl_) < 0) {
    ERR_clear_error();
    return;
  }
  sent_close_notify_ = true;
}

asio::awaitable<std::error_code> tls_stream::write_bytes(const char* p, std::size_t n, bool last) {
  if (n == 0) co_return std::error_code{};
  // Without SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_write_ex writes all `n`
  // bytes or fails; after a failure that asks to wait, the call is repeated
  // with the same buffer and length (SSL_write(3)). The flush is written
  // out here rather than through flush_out(): one coroutine frame per
  // write.
  for (;;) {
    std::size_t written = 0;
    const int r = SSL_write_ex(ssl_, p, n, &written);
    const want w = r == 1 ? want::write : classify(ssl_, r);
    if (w == want::eof) co_return asio::error::eof;
    if (w == want::error) co_return out_error_ ? out_error_ : protocol_error();
    // A write never waits for input: renegotiation is off, TLS 1.3 has none.
    if (w == want::read) co_return protocol_error();
    if (r == 1 && last && close_with_write_) append_close_notify();
    // Done, or the output buffer is full: send it (OpenSSL then goes on).
    const bool flushed = begin_flush();
    if (flushed) {
      for (asio::const_buffer b = next_send(); b.size() > 0; b = next_send()) {
        auto [ec, k] = co_await socket_->async_write_some(b, use_nothrow);
        sent(ec, k);
        // More of this write to send (the rest of the buffer, or records
        // OpenSSL has still to make): the send was progress.
        if (!ec && k != 0 && (r != 1 || !out_.empty())) progress_.progressed();
      }
      end_flush();
    }
    if (out_error_) co_return out_error_;
    if (r == 1) co_return std::error_code{};
    // OpenSSL waits for room that no flush of this call made (a second
    // writer): an error rather than calling it again at once.
    if (!flushed) co_return std::make_error_code(std::errc::operation_in_progress);
  }
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
    auto ec = co_await write_bytes(static_cast<const char*>(only->data()), only->size(), true);
    co_return io_result{ec, ec ? 0 : total};
  }
  const std::size_t gather = std::min(total, record_payload);
  if (scratch_.capacity() < gather) scratch_.reserve(gather);
  for (const auto& b : bufs) {
    if (b.size() == 0) continue;
    const char* p = static_cast<const char*>(b.data());
    if (scratch_.size() + b.size() > record_payload) {
      const std::error_code ec = co_await write_bytes(scratch_.data(), scratch_.size(), false);
      scratch_.clear();
      if (ec) co_return io_result{ec, 0};
    }
    if (b.size() >= record_payload) {
      const std::error_code ec = co_await write_bytes(p, b.size(), false);
      if (ec) co_return io_result{ec, 0};
    } else {
      scratch_.append(p, b.size());
    }
  }
  const std::error_code ec = co_await write_bytes(scratch_.data(), scratch_.size(), true);
  scratch_.clear();
  if (scratch_.capacity() > scratch_keep) std::string().swap(scratch_);
  if (ec) co_return io_result{ec, 0};
  co_return io_result{std::error_code{}, total};
}

asio::awaitable<http::byte_stream::io_result> tls_stream::write_all(asio::const_buffer bytes) {
  auto ec = co_await write_bytes(static_cast<const char*>(bytes.data()), bytes.size(), false);
  co_return io_result{ec, ec ? 0 : bytes.size()};
}

void tls_stream::shutdown_send() noexcept {
  // close_notify (RFC 8446 section 6.1), best effort on the non-blocking
  // socket: a full send buffer just loses it, and the FIN follows anyway.
  if (handshake_done_ && !sent_close_notify_) {
    sent_close_notify_ = true;
    if (SSL_shutdown(ssl_) < 0) ERR_clear_error();
  }
  // A flush under way sends close_notify after its bytes and then shuts
  // the socket down itself.
  if (flushing_) {
    shutdown_after_flush_ = true;
    return;
  }
  send_now();
  std::error_code ignored;
  socket_->shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

void tls_stream::interrupt() noexcept { net::interrupt(*socket_); }

bool tls_stream::peer_ended(bool readable) noexcept {
  if (!handshake_done_) return false;
  if (in_begin_ == in_end_ && !in_eof_) {
    if (!readable) return false;
    // What OpenSSL last asked for sizes the receive; kept for read_some()
    // when the socket turns out to have nothing.
    const std::size_t asked = in_asked_;
    const asio::mutable_buffer space = prepare_input();
    if (space.size() == 0) return false;  // out of memory: the next sweep looks again
    const ssize_t k = ::recv(static_cast<int>(socket_->native_handle()), space.data(), space.size(), MSG_DONTWAIT);
    if (k > 0) {
      received(std::error_code{}, static_cast<std::size_t>(k));
    } else if (k == 0) {
      received(asio::error::eof, 0);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      in_asked_ = asked;
      return false;
    } else {
      return true;  // a reset or another socket error: gone as well
    }
  }
  char first = 0;
  std::size_t n = 0;
  const int r = SSL_peek_ex(ssl_, &first, 1, &n);
  if (!out_.empty()) send_now();
  if (r == 1) return false;
  // want::read: part of a record, the rest still on its way.
  const want w = classify(ssl_, r);
  return w == want::eof || w == want::error;
}

void tls_stream::release_idle() noexcept {
  std::string().swap(scratch_);
  if (!flushing_ && out_.empty()) {
    std::string().swap(out_);
    std::string().swap(sending_);
  }
  // Only when drained: a parked connection's next session reads on from it.
  if (in_begin_ == in_end_) free_input();
  // Record buffers that still hold nothing (refused when they hold data).
  SSL_free_buffers(ssl_);
}

}  // namespace gateway::net
