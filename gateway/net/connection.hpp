#pragma once
// The connection coroutine: one per accepted socket, owning it by value.
// It loops read head -> read body once -> run the chain -> write, while
// keep-alive allows. Timeouts are enforced by the worker's sweep, which
// cancels the socket's pending operation and marks the connection timed
// out; the coroutine then answers 408 (or just closes when idle).
// With --proxy-protocol, the first session first reads the PROXY header
// (net/proxy_protocol.hpp) within --header-timeout: a connection without a
// valid one is closed and counted (proxy_protocol_rejected); the address
// it carries is the connection's client address from then on.
// A connection idle for longer than a second (also found by the sweep)
// sheds its session: the read buffer, the response-head string and the
// session's coroutine frame are freed. The connection then moves to the
// worker's parking lot (net/parking_lot.hpp: its descriptor is watched by
// the lot and this state is freed). A new session starts when bytes arrive.
// With TLS on the listener, the connection's tls_stream (net/tls_stream.hpp)
// carries every read and write: the handshake runs once, within
// --header-timeout, before the first request; the stream (its handshake and
// keys) moves with the socket to the parking record and back, so a session
// after an idle spell continues it. A parked TLS connection waits for the
// raw socket's readability: it sheds only while a read waits for the
// socket, when OpenSSL holds no complete record and no part of one (a
// record on its way puts the connection in the head phase, under
// --header-timeout from its first byte).
#include <asio/awaitable.hpp>
#include <asio/cancellation_signal.hpp>
#include <memory>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <string_view>

#include "gateway/core/ip_address.hpp"
#include "gateway/http/exchange.hpp"

namespace gateway::net {

class worker;
class tls_stream;

enum class conn_phase : std::uint8_t { idle, head, body, handler, write, linger };

struct parked_connection;

struct connection_state {
  // A connection just accepted from `peer` (the address accept returned).
  connection_state(worker& w, asio::ip::tcp::socket s, const asio::ip::tcp::endpoint& peer);
  // A connection back from the parking lot: the address it was accepted
  // with (or its PROXY header gave) and its flags come from the record.
  connection_state(worker& w, asio::ip::tcp::socket s, const parked_connection& p);
  ~connection_state();
  connection_state(const connection_state&) = delete;
  connection_state& operator=(const connection_state&) = delete;

  worker& owner;
  asio::ip::tcp::socket socket;
  // With TLS on the listener: the stream over `socket` (its handshake state
  // and session survive an idle spell in the parking lot: a session started
  // after it continues it). Null for plain HTTP.
  std::unique_ptr<tls_stream> tls;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  conn_phase phase = conn_phase::idle;
  bool timed_out = false;
  bool stop_requested = false;   // drain: finish the current request, then close
  bool aborted = false;          // hard cancel at the end of the drain
  // Set by the sweep: the client ended its connection (end of stream,
  // a half-close included, or an error) while its request waited for a
  // backend's answer (http/upstream_guard.hpp, client_gone()). The request
  // ends without a response and the connection closes.
  bool client_gone = false;
  bool shed = false;             // set by the sweep: an idle session should end, keeping the socket
  // No request head received yet. A drain waits for a fresh connection's
  // first request instead of closing it as idle: a balancer connects (and
  // sends its PROXY header) before it forwards the client's request, and
  // once connected it cannot send that request elsewhere.
  bool fresh = true;
  std::chrono::steady_clock::time_point idle_since{};  // when phase became idle
  // Back from the parking lot: the session's first idle wait keeps the
  // deadline and idle_since of the spell that parked it (a byte that
  // brings no request does not start the idle timeout again).
  bool resumed = false;
  // Emitted (terminal) by abort(): cancels whatever the coroutine awaits,
  // a handler's timer or an upstream read included.
  asio::cancellation_signal cancel_signal;
  // The request being served (from its chain's start until its response or
  // tunnel is done), so that abort() and the sweep reach its backend work
  // through request->guard.
  http::request_context* request = nullptr;
  // The peer, as accept returned it (a session that starts again after an
  // idle spell keeps it):
  // "ADDRESS:PORT" (the seed's RemoteAddr) and the ADDRESS inside it.
  char client_address[56] = {};
  std::size_t client_address_len = 0;
  std::string_view client_ip;
  // --proxy-protocol: the header was read (once per connection; a session
  // started after shedding finds it here). The client it names (LOCAL and
  // UNKNOWN name none: the socket's peer is the client) replaces the
  // address above.
  bool proxy_header_read = false;
  // The socket's descriptor is in the worker's parking set (disarmed while
  // the connection is active): parking it again re-arms it.
  bool in_parking_set = false;

  // Intrusive list links, owned by the worker.
  connection_state* prev = nullptr;
  connection_state* next = nullptr;

  void cancel_io() noexcept;     // cancel the pending client-side operation
  void abort() noexcept;         // close client and upstream sockets
};

// The peer's address as the seed's RemoteAddr printed it: "ADDRESS:PORT",
// "[ADDRESS]:PORT" for IPv6, written into `buf` (cut to `cap` bytes). Sets
// `ip` to the ADDRESS part (no brackets) inside `buf`; returns the length.
std::size_t format_remote_address(const asio::ip::tcp::endpoint& ep, char* buf, std::size_t cap,
                                  std::string_view& ip);

// The same for an address and port given as values (a PROXY header's).
std::size_t format_remote_address(const core::ip_address& address, std::uint16_t port, char* buf, std::size_t cap,
                                  std::string_view& ip);

// Serves one client connection until it closes or sheds its idle session
// (then the worker's parking lot takes it over). Runs on the worker's
// thread. The state is shared with the spawn's completion handler, so the
// cancellation signal outlives the coroutine frame.
asio::awaitable<void> serve_connection(std::shared_ptr<connection_state> state);

}  // namespace gateway::net
