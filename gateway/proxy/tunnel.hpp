#pragma once
// WebSocket (and any Upgrade) passthrough, RFC 9110 section 7.8 and RFC 6455
// section 4: the backend answered 101, so from here on the client and the
// backend connections carry bytes the gateway does not interpret.
//
// upstream_tunnel takes the upstream connection out of the request (it never
// returns to a pool) and, from connection.cpp's tunnel hook, relays bytes
// both ways: each direction reads into its own fixed buffer and writes it
// out before reading again, so memory is two buffers per tunnel whatever the
// traffic, and a slow reader slows its writer (TCP back-pressure passes
// through). A FIN from one side is passed on as a FIN to the other (half
// close) and the other direction goes on; an error on either side closes
// both (a TLS backend's end without close_notify counts as a FIN); no
// byte in either direction for `idle_timeout` closes both (the
// tunnel is the request's upstream_guard: its deadline moves with every
// byte, and the worker's sweep enforces it).
//
// Thread: the worker's, like the request it came from. Ownership: the
// request arena (it lives until the connection closes).
#include <asio/awaitable.hpp>
#include <chrono>
#include <string_view>

#include "gateway/core/arena.hpp"
#include "gateway/http/header_list.hpp"
#include "gateway/http/message.hpp"
#include "gateway/http/upstream_guard.hpp"
#include "gateway/proxy/upstream_pool.hpp"

namespace gateway::proxy {

// True for a request asking to switch to WebSocket: Upgrade names
// "websocket" and Connection names "upgrade" (RFC 6455 section 4.1).
bool is_websocket_upgrade(const http::request& req) noexcept;

// `head` (a request head ending in the blank line, without the hop-by-hop
// Upgrade and Connection) with "Connection: Upgrade" and the client's
// Upgrade value added back, built in `mem`.
std::string_view with_upgrade_fields(std::string_view head, std::string_view upgrade, core::arena& mem);

// True if `head` (a whole response head) has status 101. Then
// parse_switching_head() fills `fields` (views into `head`) and checks the
// syntax strictly (field-name tokens, no obs-fold, no bare CR or LF).
bool is_switching_head(std::string_view head) noexcept;
bool parse_switching_head(std::string_view head, http::header_list& fields) noexcept;

class upstream_tunnel final : public http::tunnel, public http::upstream_guard {
 public:
  // `upstream_bytes`: what the backend sent after its 101 head (copied).
  upstream_tunnel(upstream_connection conn, std::string_view upstream_bytes, std::size_t buffer_size,
                  core::arena& mem);
  ~upstream_tunnel() override;

  asio::awaitable<void> run(http::byte_stream& client, std::string_view client_bytes,
                            std::chrono::nanoseconds idle_timeout) override;

  // Hard shutdown: closes the upstream side now (the relays then end).
  void abort() noexcept override;
  // Never called: the tunnel's own relay reads the client, and sees it go.
  void client_gone() noexcept override {}

 private:
  // One direction: client to upstream or upstream to client (the client
  // end is a byte stream, plain or TLS; the upstream end a TCP socket, or
  // the TLS stream of an https member).
  template <class From, class To>
  asio::awaitable<void> relay(From& from, To& to, char* buf);
  // No byte moved for the idle timeout.
  void expire() noexcept override;
  void close_both() noexcept;

  upstream_connection conn_;
  std::string_view upstream_bytes_;
  char* up_buf_;
  char* down_buf_;
  std::size_t buf_size_;
  http::byte_stream* client_ = nullptr;
  std::chrono::nanoseconds idle_timeout_{};
};

}  // namespace gateway::proxy
