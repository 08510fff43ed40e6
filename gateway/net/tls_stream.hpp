#pragma once
// A server-side TLS stream over a connection's TCP socket: OpenSSL reads
// and writes the socket's descriptor itself (SSL_set_fd on the non-blocking
// socket) and the coroutine waits for readability or writability with
// async_wait when OpenSSL asks for it.
//
// Why not asio::ssl::stream: it keeps two 17 KiB vectors per stream and a
// BIO pair whose two 17 KiB buffers stay allocated once used, so an idle
// TLS connection would hold about 68 KiB whatever SSL_MODE_RELEASE_BUFFERS
// says. Here OpenSSL's own record buffers are the only ones, and
// SSL_MODE_RELEASE_BUFFERS (tls_context.cpp) frees them while the
// connection is idle; a write gathers small pieces into one record through
// a scratch buffer that release_idle() frees.
//
// Ownership: the connection_state owns the stream, which refers to the
// connection's socket (declared before it) and keeps the context generation
// it was made from alive (its SNI table is read during the handshake). An
// idle connection's stream moves with its socket to the parking lot's
// record and back to a new connection_state (net/parking_lot.hpp); each
// move rebinds it to the socket object that holds the descriptor now.
// Thread: the connection's worker. One read and one write may be pending at
// once (a WebSocket tunnel); a second read or write while one is pending is
// not allowed.
//
// Cancellation and timeouts reach the stream through its socket: cancel()
// ends a pending wait with operation_aborted, net::interrupt() makes the
// next read see end-of-stream; the coroutine then returns the error.
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>
#include <span>
#include <string>
#include <system_error>

#include "gateway/http/message.hpp"

typedef struct ssl_st SSL;

namespace gateway::net {

class tls_context;

class tls_stream final : public http::byte_stream {
 public:
  static constexpr bool is_tls = true;
  // Takes ownership of `ssl` (made from `ctx`); sets the socket non-blocking.
  tls_stream(asio::ip::tcp::socket& socket, SSL* ssl, std::shared_ptr<const tls_context> ctx);
  ~tls_stream();
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  // The server side of the handshake; an error (a protocol error is
  // std::errc::protocol_error) means the connection must close. Done once
  // per connection: a session that starts again after an idle spell finds
  // handshake_done() true.
  asio::awaitable<std::error_code> handshake();
  bool handshake_done() const noexcept { return handshake_done_; }
  // The handshake resumed a session (a ticket), for tests and metrics.
  bool resumed() const noexcept;
  // The server name the client sent (SNI), empty if none.
  std::string_view server_name() const noexcept;

  asio::awaitable<io_result> read_some(asio::mutable_buffer into) override;
  asio::awaitable<io_result> write_all(asio::const_buffer bytes) override;
  // Writes every buffer in order, small ones gathered into records of up to
  // 16 KiB (one send for a response head and a small body).
  asio::awaitable<io_result> write(std::span<const asio::const_buffer> bufs);
  void shutdown_send() noexcept override;
  void interrupt() noexcept override;
  // Frees the write scratch buffer (an idle connection holds none).
  void release_idle() noexcept;
  // The socket object that now holds the descriptor the stream was made
  // with (moved into a parking record, or out of one): OpenSSL keeps using
  // the descriptor; waits, cancellation and shutdown go through `socket`.
  void rebind(asio::ip::tcp::socket& socket) noexcept { socket_ = &socket; }

 private:
  asio::awaitable<std::error_code> write_bytes(const char* p, std::size_t n);
  asio::awaitable<std::error_code> flush_scratch();

  asio::ip::tcp::socket* socket_;
  SSL* ssl_;
  std::shared_ptr<const tls_context> ctx_;
  std::string scratch_;
  bool handshake_done_ = false;
  bool sent_close_notify_ = false;
};

}  // namespace gateway::net
