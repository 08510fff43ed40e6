#include "gateway/http/serializer.hpp"

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <system_error>

#include "gateway/core/coarse_clock.hpp"

namespace gateway::http {

std::string_view http_date() noexcept {
  thread_local char buf[32];
  thread_local std::time_t cached = 0;
  thread_local std::size_t len = 0;
  // A second's resolution: the coarse clock is enough (core/coarse_clock.hpp).
  const std::time_t now = core::coarse_unix_seconds();
  if (now != cached) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    len = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = now;
  }
  return {buf, len};
}

namespace {

// Writes into `out` past its old end, within room reserved beforehand: the
// head is built with plain copies, one resize for the whole head. A write
// past `end` would mean that sizing is wrong (a bug): it stops the process
// instead of writing past the string, in every build.
struct head_writer {
  char* p;
  char* end;
  void put(std::string_view s) noexcept {
    if (s.size() > static_cast<std::size_t>(end - p)) std::abort();
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  }
  void put(char c) noexcept {
    if (p == end) std::abort();
    *p++ = c;
  }
  void put_uint(std::uint64_t v) noexcept {
    const auto r = std::to_chars(p, end, v);
    if (r.ec != std::errc{}) std::abort();
    p = r.ptr;
  }
};

// Field names the serializer decides itself (RFC 9110 section 7.6.1:
// hop-by-hop framing is ours), by length first.
enum class field_kind { plain, hop, content_length, date };
field_kind kind_of(std::string_view name) noexcept {
  switch (name.size()) {
    case 4:
      return iequals(name, "date") ? field_kind::date : field_kind::plain;
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive") ? field_kind::hop : field_kind::plain;
    case 14:
      return iequals(name, "content-length") ? field_kind::content_length : field_kind::plain;
    case 17:
      return iequals(name, "transfer-encoding") ? field_kind::hop : field_kind::plain;
    default:
      return field_kind::plain;
  }
}

}  // namespace

body_framing write_response_head(std::string& out, const response& res, const head_options& opts) {
  const std::string_view reason = res.reason.empty() ? reason_phrase(res.status) : res.reason;
  const bool streamed = res.stream != nullptr;
  const bool no_body_status = status_has_no_body(res.status);
  // Room for every piece below: the status line, each field as given, and
  // the longest of the fields added here (Date, Content-Length with 20
  // digits, Transfer-Encoding, Connection).
  std::size_t room = 9 + 20 + 1 + reason.size() + 2 + 2;
  for (const auto& h : res.headers) room += h.name.size() + h.value.size() + 4;
  room += 6 + 40 + 2 + 16 + 20 + 2 + 28 + 24;
  const std::size_t old = out.size();
  out.resize(old + room);
  head_writer w{out.data() + old, out.data() + old + room};

  w.put(opts.http10_client ? std::string_view("HTTP/1.0 ") : std::string_view("HTTP/1.1 "));
  w.put_uint(static_cast<std::uint64_t>(res.status));
  w.put(' ');
  w.put(reason);
  w.put("\r\n");

  bool has_date = false;
  for (const auto& h : res.headers) {
    switch (kind_of(h.name)) {
      case field_kind::hop:
        continue;
      case field_kind::content_length:
        if (!streamed || res.framing != body_framing::content_length || no_body_status) continue;
        break;
      case field_kind::date:
        has_date = true;
        break;
      case field_kind::plain:
        break;
    }
    w.put(h.name);
    w.put(": ");
    w.put(h.value);
    w.put("\r\n");
  }
  if (!has_date) {
    w.put("Date: ");
    w.put(http_date());
    w.put("\r\n");
  }

  body_framing framing = body_framing::content_length;
  bool keep_alive = opts.keep_alive;
  if (no_body_status) {
    // No body and no Content-Length (RFC 9110 section 8.6 forbids it on 1xx and 204).
  } else if (!streamed) {
    w.put("Content-Length: ");
    w.put_uint(res.body.size());
    w.put("\r\n");
  } else if (res.framing == body_framing::content_length) {
    // Copied from the headers above.
  } else if (res.framing == body_framing::chunked && !opts.http10_client) {
    if (!opts.head_request) w.put("Transfer-Encoding: chunked\r\n");
    framing = body_framing::chunked;
  } else {
    framing = body_framing::until_close;
    keep_alive = false;
  }
  if (!keep_alive) w.put("Connection: close\r\n");
  else if (opts.http10_client) w.put("Connection: keep-alive\r\n");
  w.put("\r\n");
  out.resize(static_cast<std::size_t>(w.p - out.data()));
  return framing;
}

}  // namespace gateway::http
