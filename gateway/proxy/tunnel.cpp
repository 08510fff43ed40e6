#include "gateway/proxy/tunnel.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cstring>

#include "gateway/http/syntax.hpp"

namespace gateway::proxy {

namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
using namespace asio::experimental::awaitable_operators;

// The two ends' operations under one name, so relay() is written once.
auto read_some(asio::ip::tcp::socket& s, asio::mutable_buffer b) { return s.async_read_some(b, use_nothrow); }
auto read_some(http::byte_stream& s, asio::mutable_buffer b) { return s.read_some(b); }
auto write_all(asio::ip::tcp::socket& s, asio::const_buffer b) { return asio::async_write(s, b, use_nothrow); }
auto write_all(http::byte_stream& s, asio::const_buffer b) { return s.write_all(b); }
void shutdown_send(asio::ip::tcp::socket& s) noexcept {
  std::error_code ignored;
  s.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}
void shutdown_send(http::byte_stream& s) noexcept { s.shutdown_send(); }
// An https member's end (wss to the backend). A half close towards it is a
// TCP FIN without close_notify: sending close_notify would need a write
// racing the other direction's.
using upstream_tls_stream = upstream_connection::tls_stream;
auto read_some(upstream_tls_stream& s, asio::mutable_buffer b) { return s.async_read_some(b, use_nothrow); }
auto write_all(upstream_tls_stream& s, asio::const_buffer b) { return asio::async_write(s, b, use_nothrow); }
void shutdown_send(upstream_tls_stream& s) noexcept { shutdown_send(s.next_layer()); }

}  // namespace

bool is_websocket_upgrade(const http::request& req) noexcept {
  if (!req.upgrade || !http::has_token(req.headers.value_of("upgrade"), "websocket")) return false;
  // The "upgrade" option may be in any of several Connection fields, as
  // llhttp (which set req.upgrade) reads them.
  for (const auto& f : req.headers)
    if (http::iequals(f.name, "connection") && http::has_token(f.value, "upgrade")) return true;
  return false;
}

std::string_view with_upgrade_fields(std::string_view head, std::string_view upgrade, core::arena& mem) {
  static constexpr std::string_view connection = "Connection: Upgrade\r\nUpgrade: ";
  // `head` ends with CRLF CRLF (request_writer.hpp); the fields go before the last CRLF.
  std::string_view base = head.substr(0, head.size() - 2);
  const std::size_t n = base.size() + connection.size() + upgrade.size() + 4;
  auto* p = static_cast<char*>(mem.allocate(n, 1));
  std::size_t at = 0;
  for (std::string_view part : {base, connection, upgrade, std::string_view("\r\n\r\n")}) {
    std::memcpy(p + at, part.data(), part.size());
    at += part.size();
  }
  return {p, n};
}

bool is_switching_head(std::string_view head) noexcept {
  // "HTTP/1.1 101" then SP or the end of the line (RFC 9112 section 4).
  return head.size() >= 14 && head.substr(0, 7) == "HTTP/1." && (head[7] == '0' || head[7] == '1') &&
         head.substr(8, 4) == " 101" && (head[12] == ' ' || head[12] == '\r');
}

bool parse_switching_head(std::string_view head, http::header_list& fields) noexcept {
  if (!is_switching_head(head)) return false;
  auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return false;
  for (char c : head.substr(0, eol))
    if (c == '\r' || c == '\n' || c == '\0') return false;
  std::string_view rest = head.substr(eol + 2);
  while (!rest.empty()) {
    auto end = rest.find("\r\n");
    if (end == std::string_view::npos) return false;
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end + 2);
    if (line.empty()) return rest.empty();  // the blank line ends the head
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (!http::is_tchar(static_cast<unsigned char>(c))) return false;  // also refuses obs-fold and space before ':'
    std::string_view value = http::trim_ows(line.substr(colon + 1));
    for (char c : value)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return false;
    fields.add(name, value);
  }
  return false;
}

upstream_tunnel::upstream_tunnel(upstream_connection conn, std::string_view upstream_bytes, std::size_t buffer_size,
                                 core::arena& mem)
    : conn_(std::move(conn)),
      upstream_bytes_(mem.copy(upstream_bytes)),
      up_buf_(static_cast<char*>(mem.allocate(buffer_size, 1))),
      down_buf_(static_cast<char*>(mem.allocate(buffer_size, 1))),
      buf_size_(buffer_size) {}

upstream_tunnel::~upstream_tunnel() { conn_.close(); }

void upstream_tunnel::abort() noexcept { conn_.interrupt(); }

void upstream_tunnel::expire() noexcept { close_both(); }

void upstream_tunnel::close_both() noexcept {
  // Interrupting the client (not closing it: the connection owns it) ends
  // a read pending on it; interrupting the upstream ends one pending there
  // (the other relay may still be awaiting it: run() closes it at the end).
  if (client_ != nullptr) client_->interrupt();
  conn_.interrupt();
}

template <class From, class To>
asio::awaitable<void> upstream_tunnel::relay(From& from, To& to, char* buf) {
  co_await asio::this_coro::throw_if_cancelled(false);
  for (;;) {
    auto [ec, n] = co_await read_some(from, asio::buffer(buf, buf_size_));
    if (ec) {
      if (upstream_connection::is_eof(ec)) {
        // Half close (RFC 9293 section 3.6): pass the FIN on, keep the
        // other direction open until it finishes too.
        shutdown_send(to);
      } else {
        close_both();
      }
      co_return;
    }
    arm(idle_timeout_);
    auto [wec, written] = co_await write_all(to, asio::buffer(buf, n));
    (void)written;
    if (wec) {
      close_both();
      co_return;
    }
    arm(idle_timeout_);
  }
}

asio::awaitable<void> upstream_tunnel::run(http::byte_stream& client, std::string_view client_bytes,
                                           std::chrono::nanoseconds idle_timeout) {
  co_await asio::this_coro::throw_if_cancelled(false);
  client_ = &client;
  idle_timeout_ = idle_timeout;
  arm(idle_timeout_);
  if (!conn_.is_open()) co_return;  // aborted meanwhile
  auto& upstream = conn_.socket();
  // Bytes that arrived with the heads on either side go first.
  if (!client_bytes.empty()) {
    auto [ec, n] = co_await conn_.write(asio::buffer(client_bytes));
    (void)n;
    if (ec) co_return;
  }
  if (!upstream_bytes_.empty()) {
    auto [ec, n] = co_await client.write_all(asio::buffer(upstream_bytes_));
    (void)n;
    if (ec) co_return;
  }
  if (auto* tls = conn_.tls())
    co_await (relay(client, *tls, up_buf_) && relay(*tls, client, down_buf_));
  else
    co_await (relay(client, upstream, up_buf_) && relay(upstream, client, down_buf_));
  disarm();
  close_both();
  conn_.close();
  client_ = nullptr;
}

}  // namespace gateway::proxy
