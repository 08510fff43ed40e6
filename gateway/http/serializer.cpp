#include "gateway/http/serializer.hpp"

#include <charconv>
#include <chrono>
#include <ctime>

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

void append_uint(std::string& out, std::uint64_t v) {
  char tmp[24];
  auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  out.append(tmp, r.ptr);
}

}  // namespace

body_framing write_response_head(std::string& out, const response& res, const head_options& opts) {
  out.append(opts.http10_client ? "HTTP/1.0 " : "HTTP/1.1 ");
  append_uint(out, static_cast<std::uint64_t>(res.status));
  out.push_back(' ');
  out.append(res.reason.empty() ? reason_phrase(res.status) : res.reason);
  out.append("\r\n");

  const bool streamed = res.stream != nullptr;
  bool has_date = false;
  for (const auto& h : res.headers) {
    // Hop-by-hop framing is ours to decide (RFC 9110 section 7.6.1).
    if (iequals(h.name, "connection") || iequals(h.name, "transfer-encoding") || iequals(h.name, "keep-alive"))
      continue;
    if (iequals(h.name, "content-length") &&
        (!streamed || res.framing != body_framing::content_length || status_has_no_body(res.status)))
      continue;
    if (!has_date && iequals(h.name, "date")) has_date = true;
    out.append(h.name);
    out.append(": ");
    out.append(h.value);
    out.append("\r\n");
  }
  if (!has_date) {
    out.append("Date: ");
    out.append(http_date());
    out.append("\r\n");
  }

  body_framing framing = body_framing::content_length;
  bool keep_alive = opts.keep_alive;
  if (status_has_no_body(res.status)) {
    // No body and no Content-Length (RFC 9110 section 8.6 forbids it on 1xx and 204).
  } else if (!streamed) {
    out.append("Content-Length: ");
    append_uint(out, res.body.size());
    out.append("\r\n");
  } else if (res.framing == body_framing::content_length) {
    // Copied from the headers above.
  } else if (res.framing == body_framing::chunked && !opts.http10_client) {
    if (!opts.head_request) out.append("Transfer-Encoding: chunked\r\n");
    framing = body_framing::chunked;
  } else {
    framing = body_framing::until_close;
    keep_alive = false;
  }
  if (!keep_alive) out.append("Connection: close\r\n");
  else if (opts.http10_client) out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
  return framing;
}

}  // namespace gateway::http
