#pragma once
// A server-side TLS stream over a connection's TCP socket. OpenSSL reads and
// writes through two BIOs of this stream, never the descriptor: its input
// is what the coroutine received with the socket's own Asio read into a
// small input buffer, and what it writes is gathered in an output buffer
// that the coroutine sends with the socket's Asio write. On io_uring both
// are ring operations, submitted with the worker's other operations in one
// system call; on epoll they are Asio's speculative read and write.
//
// Why not asio::ssl::stream: it keeps two 17 KiB vectors per stream and a
// BIO pair whose two 17 KiB buffers stay allocated once used, so an idle
// TLS connection would hold about 68 KiB whatever SSL_MODE_RELEASE_BUFFERS
// says. Here the input buffer is 2 KiB (a request or a ClientHello; it
// grows to one record's size when OpenSSL asks for a larger record, and
// shrinks back once drained), the output buffer holds one response's
// records (at most 64 KiB before they are sent),
// SSL_MODE_RELEASE_BUFFERS (tls_context.cpp) frees OpenSSL's record
// buffers while the connection waits, and a write gathers small pieces into
// one record through a scratch buffer; release_idle() frees the stream's
// buffers.
//
// Why not let OpenSSL read and write the descriptor: its read finds the
// socket empty after each response (one failed read(2)), then needs a wait
// and a second read(2), and each response is a write(2) of its own, where
// the socket's Asio operations are one ring entry each.
//
// Ownership: the connection_state owns the stream, which refers to the
// connection's socket (declared before it) and keeps the context generation
// it was made from alive (its SNI table is read during the handshake). An
// idle connection's stream moves with its socket to the parking lot's
// record and back to a new connection_state (net/parking_lot.hpp); each
// move rebinds it to the socket object that holds the descriptor now.
// Thread: the connection's worker. One read and one write may be pending at
// once (a WebSocket tunnel); a second read or write while one is pending is
// not allowed. Bytes OpenSSL writes while reading (a TLS 1.3 KeyUpdate
// answer) are sent at once when no write is pending, else after the
// pending write's bytes by that write.
//
// Cancellation and timeouts reach the stream through its socket: cancel()
// ends a pending receive or send with operation_aborted, net::interrupt()
// makes the next read see end-of-stream; the coroutine then returns the
// error.
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <system_error>

#include "gateway/http/message.hpp"
#include "gateway/net/progress_deadline.hpp"

typedef struct ssl_st SSL;

namespace gateway::net {

class tls_context;

class tls_stream final : public http::byte_stream {
 public:
  static constexpr bool is_tls = true;
  // Takes ownership of `ssl` (made from `ctx`).
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
  // When (coarse clock) a read received the first bytes of a record it
  // still waits to complete, with no plaintext returned since; max() when
  // no record is partly received. A session idle between requests reads
  // it when the sweep cancels its read: ciphertext that gives no plaintext
  // yet is a request on its way (net/connection.hpp).
  std::chrono::steady_clock::time_point partial_record_since() const noexcept { return partial_since_; }
  asio::awaitable<io_result> write_all(asio::const_buffer bytes) override;
  // Writes every buffer in order, small ones gathered into records of up to
  // 16 KiB (one send for a response head and a small body).
  asio::awaitable<io_result> write(std::span<const asio::const_buffer> bufs);
  void shutdown_send() noexcept override;
  // The next write() is the connection's last (a response after which the
  // connection closes): its close_notify is appended to that write's last
  // record, so both leave in one send and shutdown_send() only sends the
  // FIN. Without it, close_notify is a send of its own in shutdown_send().
  void close_after_write() noexcept { close_with_write_ = true; }
  // The deadline a write pushes each time a send of it moves bytes and
  // more is left to send (net/progress_deadline.hpp). Set by each session
  // (the connection_state, and so the deadline, is new after parking).
  void watch_progress(progress_deadline d) noexcept { progress_ = d; }
  void interrupt() noexcept override;
  // For the worker's sweep while the connection's request waits for its
  // backend (no read or write pending on the stream): whether the client
  // has ended its side of the session with close_notify (RFC 8446 section
  // 6.1; like a half-close, it sends nothing more) or broken it (a fatal
  // alert, a record that does not decrypt). A close_notify is a record
  // like any other, readable data to poll(), not a FIN. `readable`: poll()
  // found bytes on the socket; without them only ciphertext the stream
  // holds already is looked at, with no system call. Never blocks: one
  // receive of what the socket holds (into the input buffer, where the
  // next read_some() finds it), then OpenSSL decrypts up to the first
  // record with data and keeps that data for the connection's next read
  // (a pipelined request). So a close_notify behind such data is not seen
  // here; the FIN that usually follows it is, by the sweep's poll(). What
  // OpenSSL writes meanwhile (a TLS 1.3 KeyUpdate answer) is sent as in
  // read_some().
  bool peer_ended(bool readable) noexcept;
  // Frees the stream's buffers (an idle connection holds none).
  void release_idle() noexcept;
  // The socket object that now holds the descriptor the stream was made
  // with (moved into a parking record, or out of one): receives, sends,
  // waits, cancellation and shutdown go through `socket` from then on.
  void rebind(asio::ip::tcp::socket& socket) noexcept { socket_ = &socket; }

 private:
  friend struct tls_input_bio;
  friend struct tls_output_bio;

  // `last`: the write's last piece, which carries close_notify after
  // close_after_write().
  asio::awaitable<std::error_code> write_bytes(const char* p, std::size_t n, bool last);
  // Appends close_notify to the output buffer (once; not when the buffer
  // is near its limit, where shutdown_send() sends it instead).
  void append_close_notify() noexcept;
  // Receives what the socket has into the input buffer (empty when called),
  // sized for what OpenSSL last asked for; end of stream is recorded for
  // OpenSSL to see (in_eof_), other errors are returned. fill() is the
  // whole receive; read_some() does the same with prepare_input() and
  // received() around its own co_await (no second coroutine frame).
  asio::awaitable<std::error_code> fill();
  asio::mutable_buffer prepare_input() noexcept;  // empty: out of memory
  std::error_code received(const std::error_code& ec, std::size_t n) noexcept;
  // Whether OpenSSL can make progress without receiving: bytes in the input
  // buffer or in OpenSSL's own record buffer, or the peer's end of stream.
  bool have_input() const noexcept;
  void free_input() noexcept;
  // Sends the output buffer (and what OpenSSL adds to it meanwhile) with
  // the socket's Asio write; one sender at a time (the writer, or the
  // handshake), others leave their bytes to it. flush_out() is the whole
  // flush; write_bytes() runs the same steps inline: begin_flush() (false:
  // nothing to send, or another flush runs), next_send() until empty with
  // sent() after each send, end_flush().
  asio::awaitable<std::error_code> flush_out();
  bool begin_flush() noexcept;
  asio::const_buffer next_send() noexcept;
  void sent(const std::error_code& ec, std::size_t n) noexcept;
  std::error_code end_flush() noexcept;
  // What OpenSSL wrote while reading: sent now with a non-blocking send(2)
  // unless a flush is under way (which sends it); what the socket does not
  // take waits for the next flush.
  void send_now() noexcept;

  asio::ip::tcp::socket* socket_;
  SSL* ssl_;
  std::shared_ptr<const tls_context> ctx_;
  std::string scratch_;
  // Received bytes not yet taken by OpenSSL: in_[in_begin_, in_end_).
  char* in_ = nullptr;
  std::size_t in_cap_ = 0;
  std::size_t in_begin_ = 0;
  std::size_t in_end_ = 0;
  // What OpenSSL's last read from the input BIO asked for (a record header,
  // then its body), to size the next receive.
  std::size_t in_asked_ = 0;
  bool in_eof_ = false;
  std::chrono::steady_clock::time_point partial_since_ = std::chrono::steady_clock::time_point::max();
  // The BIOs could not be made (out of memory): handshake() fails.
  bool no_bios_ = false;
  // Bytes OpenSSL wrote, not yet handed to the socket, and the bytes of the
  // send in flight (out_ is swapped into it, so OpenSSL can append to out_
  // meanwhile).
  std::string out_;
  std::string sending_;
  bool flushing_ = false;
  // shutdown_send() came during a flush: the flush ends with it.
  bool shutdown_after_flush_ = false;
  // A failed send: the stream cannot write any more.
  std::error_code out_error_;
  bool handshake_done_ = false;
  bool sent_close_notify_ = false;
  bool close_with_write_ = false;
  progress_deadline progress_;
};

}  // namespace gateway::net
