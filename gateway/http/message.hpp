#pragma once
// Request and response as the middleware chain sees them. Every view points
// into the connection's read buffer (head bytes, stable until the request
// ends) or the request arena; nothing here outlives the request.
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

#include "gateway/http/header_list.hpp"

namespace gateway::http {

struct request {
  std::string_view method;  // the token as sent, e.g. "GET"
  int method_id = 0;        // llhttp_method_t, or -1 for an extension method
  std::string_view target;  // request-target as sent (origin-form for us)
  std::string_view path;    // target up to '?'
  std::string_view query;   // after '?', without it; empty if none
  std::uint8_t version_major = 1;
  std::uint8_t version_minor = 1;
  header_list headers;
  std::string_view body;    // the once-read body, de-chunked, in the arena
  bool keep_alive = true;
  bool was_chunked = false;
  bool upgrade = false;
};

// A streamed response body (the proxy's). The connection pulls pieces until
// it gets an empty one. An error ends the response: the connection is closed
// because the client cannot be told otherwise once the head is out.
class body_source {
 public:
  virtual ~body_source() = default;
  virtual asio::awaitable<std::pair<std::error_code, std::string_view>> next() = 0;
  // The piece next() would return without waiting, handed out now (empty
  // when next() would have to wait). The connection sends it in the same
  // write as the head: a small proxied response costs one send, not two.
  virtual std::string_view take_ready() noexcept { return {}; }
  // Every piece was handed out: next() would return an empty one.
  virtual bool finished() const noexcept { return false; }
};

// The client's end of a connection as a byte stream: the TCP socket, or the
// TLS stream on it (net/tls_stream.hpp). Declared here so a tunnel can relay
// a client's bytes without knowing which; implemented in net/. One read and
// one write may be pending at once (a tunnel relays both ways). Runs on the
// connection's worker thread.
class byte_stream {
 public:
  using io_result = std::tuple<std::error_code, std::size_t>;
  virtual asio::awaitable<io_result> read_some(asio::mutable_buffer into) = 0;
  // Writes all of `bytes` (an error code and the count written otherwise).
  virtual asio::awaitable<io_result> write_all(asio::const_buffer bytes) = 0;
  // Half close: no more bytes from us (TLS: close_notify, then FIN).
  virtual void shutdown_send() noexcept = 0;
  // Ends both directions and any pending operation (net/interrupt.hpp);
  // the connection closes the socket afterwards.
  virtual void interrupt() noexcept = 0;

 protected:
  ~byte_stream() = default;
};

// An upgraded connection (RFC 9110 section 7.8), e.g. a WebSocket: set by a
// handler that answered 101 and holds the other end (the proxy's upstream
// socket). The connection writes the 101 head with res.headers as they are
// (the handler includes Upgrade and Connection: upgrade), then awaits run()
// with its byte stream and the client bytes already read past the request; run()
// relays bytes both ways until both sides are done, either fails, or no
// byte moves for `idle_timeout`. The connection closes afterwards. Arena-
// owned, like a body_source; runs on the worker's thread.
class tunnel {
 public:
  virtual ~tunnel() = default;
  virtual asio::awaitable<void> run(byte_stream& client, std::string_view client_bytes,
                                    std::chrono::nanoseconds idle_timeout) = 0;
};

enum class body_framing : std::uint8_t {
  content_length,  // the Content-Length header in `headers` is authoritative
  chunked,         // the connection chunk-encodes the stream (HTTP/1.1 clients)
  until_close,     // close-delimited (RFC 9112 section 6.3, item 8)
};

struct response {
  int status = 200;
  std::string_view reason;  // empty: the standard phrase
  header_list headers;
  std::string_view body;    // used when stream == nullptr
  body_source* stream = nullptr;  // arena-owned when set
  body_framing framing = body_framing::content_length;
  bool close = false;       // close the connection after this response
  bool no_body = false;     // HEAD, 1xx, 204, 304: head only, whatever the length
  tunnel* upgrade = nullptr;  // with status 101 on an Upgrade request: see tunnel
};

// Standard reason phrase (RFC 9110 section 15), "Unknown" for others.
std::string_view reason_phrase(int status) noexcept;

}  // namespace gateway::http
