// libFuzzer target: the request head parser and validator
// (http::request_parser::parse_head), then, for a chunked request, the body
// decoder behind it (feed_chunked), on arbitrary client bytes. This is the
// path gateway/net/connection.cpp takes from a socket read to a request.
//
// Beyond "no crash, no sanitizer report", a complete head must satisfy:
//  - head_size within the input and the head limit, ending in CRLF CRLF;
//  - method a non-empty token, version 1.0 or 1.1;
//  - every header name a non-empty token (RFC 9110 section 5.6.2), every
//    value free of CR, LF, NUL and other controls but HTAB and without
//    surrounding whitespace, and all views inside the head;
//  - framing unambiguous: chunked excludes Content-Length (RFC 9112 6.3);
//  - the same answer from a parser that runs llhttp on every head (the
//    default one skips it on heads of the common kind);
//  - the same answer for a copy of the head alone (the connection parses the
//    head again after moving its buffer), and "incomplete", never an error or
//    a different head, for shorter prefixes (a head that arrives in pieces);
//  - for chunked bodies, the same decoded bytes and status whether the body
//    comes whole or in two pieces, after a fresh parse_head reset the decoder.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/core/arena.hpp"
#include "gateway/http/request_parser.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace gateway;
using fuzz::view_inside;

// Smaller than the defaults (16 KiB, 100 fields) so that the fuzzer, whose
// inputs are a few KiB, reaches the limit paths (431) too.
constexpr http::head_limits limits{2048, 32};
constexpr std::uint64_t max_body = 16 * 1024;

struct body_sink {
  std::string bytes;
  static bool append(void* ctx, const char* data, std::size_t len) {
    static_cast<body_sink*>(ctx)->bytes.append(data, len);
    return true;
  }
};

// Runs the request through a fresh parser and arena, as a connection does
// for the first request on it.
struct parsed {
  core::arena mem;
  http::request req;
  http::head_result head;
};

void parse(parsed& p, http::request_parser& parser, std::string_view buf) {
  p.req = http::request{};
  p.req.headers = http::header_list(p.mem);
  p.head = parser.parse_head(buf, p.req, limits);
}

bool all_tchar(std::string_view s) {
  for (unsigned char c : s)
    if (!http::is_tchar(c)) return false;
  return true;
}

bool valid_value(std::string_view v) {
  for (unsigned char c : v)
    if ((c < 0x20 && c != '\t') || c == 0x7F) return false;
  if (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.back() == ' ' || v.back() == '\t')) return false;
  return true;
}

void check_complete(const parsed& p, std::string_view buf) {
  const http::head_result& h = p.head;
  const http::request& req = p.req;
  FUZZ_CHECK(h.head_size >= 4 && h.head_size <= buf.size());
  FUZZ_CHECK(h.head_size <= limits.max_head);
  FUZZ_CHECK(buf.substr(h.head_size - 4, 4) == "\r\n\r\n");
  const std::string_view head = buf.substr(0, h.head_size);

  FUZZ_CHECK(!req.method.empty() && all_tchar(req.method) && view_inside(req.method, head));
  FUZZ_CHECK(!req.target.empty());
  for (unsigned char c : req.target) FUZZ_CHECK(c > 0x20 && c < 0x7F);
  // Dot-segments are always resolved; a target that had some is rebuilt
  // (origin-form) in the arena, with the path and query inside it.
  FUZZ_CHECK(!http::has_dot_segment(req.path));
  if (view_inside(req.target, head)) {
    // The path of an absolute-form target without one is the literal "/".
    FUZZ_CHECK(view_inside(req.path, head) || req.path == "/");
    FUZZ_CHECK(view_inside(req.query, head));
  } else {
    FUZZ_CHECK(!req.path.empty() && req.path.front() == '/' && view_inside(req.path, req.target));
    FUZZ_CHECK(req.target.substr(0, req.path.size()) == req.path && view_inside(req.query, req.target));
  }
  FUZZ_CHECK(req.version_major == 1 && req.version_minor <= 1);

  FUZZ_CHECK(req.headers.size() <= limits.max_headers);
  std::size_t hosts = 0, te = 0, cl = 0;
  for (const auto& f : req.headers) {
    FUZZ_CHECK(!f.name.empty() && all_tchar(f.name));
    FUZZ_CHECK(view_inside(f.name, head) && view_inside(f.value, head));
    FUZZ_CHECK(valid_value(f.value));
    hosts += http::iequals(f.name, "host");
    te += http::iequals(f.name, "transfer-encoding");
    cl += http::iequals(f.name, "content-length");
  }
  if (req.version_minor == 1) FUZZ_CHECK(hosts == 1);
  FUZZ_CHECK(hosts <= 1);
  if (h.chunked) {
    FUZZ_CHECK(te == 1 && cl == 0 && req.version_minor == 1 && h.content_length == 0);
    FUZZ_CHECK(http::iequals(req.headers.value_of("transfer-encoding"), "chunked"));
    FUZZ_CHECK(req.was_chunked);
  } else {
    FUZZ_CHECK(te == 0 && cl <= 1);
    if (cl == 0) FUZZ_CHECK(h.content_length == 0);
  }
}

// The same head, parsed from an exactly-sized copy of its bytes (so ASan
// sees any read past its end), must give the same request.
void check_copy(const parsed& p, std::string_view buf) {
  const std::size_t n = p.head.head_size;
  auto copy = std::make_unique<char[]>(n);
  std::memcpy(copy.get(), buf.data(), n);
  const std::string_view cbuf(copy.get(), n);

  http::request_parser parser;
  parsed q;
  parse(q, parser, cbuf);
  FUZZ_CHECK(q.head.what == http::head_result::kind::complete);
  FUZZ_CHECK(q.head.head_size == n && q.head.chunked == p.head.chunked &&
             q.head.content_length == p.head.content_length &&
             q.head.expect_continue == p.head.expect_continue);
  auto offset = [](std::string_view v, std::string_view base) { return v.data() - base.data(); };
  FUZZ_CHECK(q.req.method == p.req.method && offset(q.req.method, cbuf) == offset(p.req.method, buf));
  FUZZ_CHECK(q.req.target == p.req.target && q.req.path == p.req.path && q.req.query == p.req.query);
  FUZZ_CHECK(q.req.keep_alive == p.req.keep_alive && q.req.method_id == p.req.method_id);
  FUZZ_CHECK(q.req.headers.size() == p.req.headers.size());
  for (std::size_t i = 0; i < q.req.headers.size(); ++i) {
    const auto& a = p.req.headers.begin()[i];
    const auto& b = q.req.headers.begin()[i];
    FUZZ_CHECK(a.name == b.name && a.value == b.value);
    FUZZ_CHECK(offset(a.name, buf) == offset(b.name, cbuf));
  }

  // Shorter prefixes are incomplete: never an error, never a head. Every
  // prefix is too slow for big heads; the last few bytes matter most (the
  // final CRLF CRLF), plus a few spread over the head.
  for (std::size_t k : {n - 1, n - 2, n - 3, n / 2, n / 3, n / 7}) {
    if (k >= n) continue;
    parsed r;
    parse(r, parser, cbuf.substr(0, k));
    FUZZ_CHECK(r.head.what == http::head_result::kind::incomplete);
  }
}

void check_chunked(http::request_parser& parser, parsed& p, std::string_view buf) {
  const std::string_view rest = buf.substr(p.head.head_size);
  body_sink whole;
  http::chunk_result r1 = parser.feed_chunked(rest, &body_sink::append, &whole, max_body);
  FUZZ_CHECK(r1.consumed <= rest.size());
  FUZZ_CHECK(whole.bytes.size() <= max_body);
  if (r1.what == http::chunk_result::kind::need_more) FUZZ_CHECK(r1.consumed == rest.size());

  // parse_head again (as the connection does after growing its buffer)
  // must restart the decoder; then feed the body in two pieces.
  parse(p, parser, buf);
  FUZZ_CHECK(p.head.what == http::head_result::kind::complete && p.head.chunked);
  body_sink split;
  const std::size_t cut = rest.size() / 2;
  http::chunk_result r2 = parser.feed_chunked(rest.substr(0, cut), &body_sink::append, &split, max_body);
  std::size_t consumed = r2.consumed;
  if (r2.what == http::chunk_result::kind::need_more) {
    FUZZ_CHECK(r2.consumed == cut);
    r2 = parser.feed_chunked(rest.substr(cut), &body_sink::append, &split, max_body);
    consumed = cut + r2.consumed;
  }
  FUZZ_CHECK(r2.what == r1.what);
  FUZZ_CHECK(consumed == r1.consumed);
  FUZZ_CHECK(split.bytes == whole.bytes);
}

// The parser skips llhttp on heads of the common kind (request_parser.hpp):
// one that runs llhttp on every head must give the same answer.
void check_same_with_llhttp(const parsed& p, std::string_view buf) {
  http::request_parser always(http::request_parser::llhttp_always_t{});
  parsed q;
  parse(q, always, buf);
  FUZZ_CHECK(q.head.what == p.head.what && q.head.status == p.head.status && q.head.message == p.head.message);
  if (p.head.what != http::head_result::kind::complete) return;
  FUZZ_CHECK(q.head.head_size == p.head.head_size && q.head.chunked == p.head.chunked &&
             q.head.content_length == p.head.content_length && q.head.expect_continue == p.head.expect_continue);
  FUZZ_CHECK(q.req.method_id == p.req.method_id && q.req.upgrade == p.req.upgrade &&
             q.req.keep_alive == p.req.keep_alive && q.req.was_chunked == p.req.was_chunked);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view buf(reinterpret_cast<const char*>(data), size);
  http::request_parser parser;
  parsed p;
  parse(p, parser, buf);
  check_same_with_llhttp(p, buf);
  switch (p.head.what) {
    case http::head_result::kind::incomplete:
      FUZZ_CHECK(size < limits.max_head);
      return 0;
    case http::head_result::kind::error:
      FUZZ_CHECK(p.head.status >= 400 && p.head.status <= 505 && !p.head.message.empty());
      return 0;
    case http::head_result::kind::complete:
      break;
  }
  check_complete(p, buf);
  check_copy(p, buf);
  if (p.head.chunked) check_chunked(parser, p, buf);
  return 0;
}
