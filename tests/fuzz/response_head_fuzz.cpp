// libFuzzer target: the proxy's reading of a backend response
// (proxy::find_head_end, response_reader::parse_head and decode), fed the
// way proxy_handler.cpp feeds it: scan for the end of a head, parse an
// exact copy of it, skip interim (1xx) heads, then decode the body bytes
// that follow, in place.
//
// Input layout: byte 0: bit 0 says whether the request was HEAD, bits 1-7
// pick a cut point; the rest is what the backend sent.
//
// Checks, beyond "no crash, no sanitizer report":
//  - find_head_end agrees with a naive search, also when resumed at the
//    point where the proxy stopped scanning an earlier, shorter read;
//  - an accepted head ends its lines with CRLF only: no bare CR (llhttp 8.1
//    takes "\r\n\r" plus any byte as the end of the fields, so it would see
//    a different head from find_head_end's) and no bare LF (llhttp 8.1
//    accepts one after the status line); at most max_fields fields, each with a non-empty
//    token name (RFC 9112 section 5.1: no whitespace before the colon), a
//    value without CR, LF or NUL, all views inside the head; a reason phrase
//    of HTAB, SP, VCHAR and obs-text only (RFC 9112 section 4); a final
//    status of 200-599 (RFC 9110 section 15), a 1xx (not 101) as interim,
//    and framing flags that agree with each other (RFC 9112 section 6.3);
//  - a reader that runs llhttp on every response (the default one reads
//    plain responses without it) gives the same head, fields and body;
//  - a second, fresh reader parses the same head to the same result (so the
//    reset between interim heads forgets everything);
//  - the body decodes to the same bytes, error, completion, extra bytes and
//    reusability whether it comes whole or cut in two (the first piece moved
//    down over the head, as start_body() does), Content-Length bodies are
//    exactly that long, and a chunked body that the strict
//    http::chunked_decoder completes is decoded to the same bytes, ending at
//    the same byte, unless llhttp refuses it.
//
// The proxy forwards the status, reason and field names it accepts, so the
// head checks above are what the client would otherwise receive. Inputs that
// broke them (control bytes in the reason, status codes outside 100-599,
// field names that are empty or end in whitespace, bare CR or LF in the
// head) are kept in regressions/response_head_fuzz/.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/core/arena.hpp"
#include "gateway/http/chunked_decoder.hpp"
#include "gateway/http/request_parser.hpp"
#include "gateway/proxy/response_reader.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace gateway;
using fuzz::view_inside;

// Below the proxy's default (256) so the fuzzer reaches the limit.
constexpr std::uint32_t max_fields = 32;

std::unique_ptr<char[]> exact_copy(std::string_view s) {
  auto p = std::make_unique<char[]>(s.size() ? s.size() : 1);
  if (!s.empty()) std::memcpy(p.get(), s.data(), s.size());
  return p;
}

std::size_t naive_head_end(std::string_view w) {
  std::size_t a = w.find("\n\n"), b = w.find("\n\r\n");
  std::size_t ea = a == std::string_view::npos ? SIZE_MAX : a + 2;
  std::size_t eb = b == std::string_view::npos ? SIZE_MAX : b + 3;
  std::size_t e = ea < eb ? ea : eb;
  return e == SIZE_MAX ? 0 : e;
}

void check_head_end(std::string_view window, std::size_t end, std::size_t cut) {
  FUZZ_CHECK(end <= window.size());
  FUZZ_CHECK(end == naive_head_end(window));
  // The proxy resumes the scan two bytes before where the last read ended.
  const std::size_t m = cut < window.size() ? cut : window.size();
  if (naive_head_end(window.substr(0, m)) == 0)
    FUZZ_CHECK(proxy::find_head_end(window, m > 2 ? m - 2 : 0) == end);
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!http::is_tchar(c)) return false;
  return true;
}

bool no_line_breaks(std::string_view s) {
  for (char c : s)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

bool has_bare_cr(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return true;
  return false;
}

bool has_bare_lf(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return true;
  return false;
}

// reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) (RFC 9112 section 4).
bool valid_reason(std::string_view s) {
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\t') || c == 0x7F) return false;
  return true;
}

void check_fields(const http::header_list& fields, std::string_view head, const proxy::response_reader& r) {
  FUZZ_CHECK(fields.size() <= max_fields);
  for (const auto& f : fields) {
    FUZZ_CHECK(is_token(f.name));
    FUZZ_CHECK(no_line_breaks(f.value));
    FUZZ_CHECK(view_inside(f.name, head) && view_inside(f.value, head));
  }
  FUZZ_CHECK(view_inside(r.reason(), head));
  FUZZ_CHECK(valid_reason(r.reason()));
}

struct reader_state {
  int status;
  bool complete, chunked, has_content_length, until_close, no_body;
  std::string_view reason;
  bool operator==(const reader_state&) const = default;
};

reader_state state_of(const proxy::response_reader& r) {
  return {r.status(), r.complete(), r.chunked(), r.has_content_length(), r.until_close(), r.no_body(), r.reason()};
}

struct body_result {
  std::string bytes;
  bool error = false;
};

// Feeds `body` to `r` as the proxy does: the first piece arrives behind the
// head in one buffer and is moved down to the buffer's start; later pieces
// are decoded in place. Stops at the first error.
body_result decode_body(proxy::response_reader& r, std::string_view head, std::string_view body, std::size_t cut) {
  body_result out;
  std::string first(head);
  first.append(body.substr(0, cut));
  auto buf = exact_copy(first);
  auto d = r.decode(buf.get(), buf.get() + head.size(), cut);
  FUZZ_CHECK(d.size <= cut);
  out.bytes.append(buf.get(), d.size);
  out.error = d.error;
  if (d.error || cut == body.size()) return out;
  auto rest = exact_copy(body.substr(cut));
  d = r.decode(rest.get(), rest.get(), body.size() - cut);
  FUZZ_CHECK(d.size <= body.size() - cut);
  out.bytes.append(rest.get(), d.size);
  out.error = d.error;
  return out;
}

// Content-Length as llhttp reads it: digits, any number of leading zeros.
bool parse_length(std::string_view v, std::uint64_t& n) {
  if (v.empty()) return false;
  while (v.size() > 1 && v.front() == '0') v.remove_prefix(1);
  if (v.size() > 19) return false;
  n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

bool append_sink(void* ctx, const char* data, std::size_t len) {
  static_cast<std::string*>(ctx)->append(data, len);
  return true;
}

void check_body(bool head_request, std::string_view head, std::string_view body, std::size_t cut,
                const proxy::response_reader& first_reader, core::arena& mem) {
  // Two fresh readers for the whole/split comparison; both must parse the
  // head exactly as the reader that went through the interim heads did.
  proxy::response_reader a(head_request), b(head_request);
  http::header_list fa(mem), fb(mem);
  FUZZ_CHECK(a.parse_head(head, fa, max_fields) == proxy::response_reader::head_status::ok);
  FUZZ_CHECK(b.parse_head(head, fb, max_fields) == proxy::response_reader::head_status::ok);
  FUZZ_CHECK(state_of(a) == state_of(first_reader) && state_of(b) == state_of(first_reader));

  body_result whole = decode_body(a, head, body, body.size());
  body_result split = decode_body(b, head, body, cut);
  FUZZ_CHECK(whole.error == split.error);
  FUZZ_CHECK(whole.bytes == split.bytes);
  if (whole.error) return;
  FUZZ_CHECK(a.complete() == b.complete());
  FUZZ_CHECK(a.extra_bytes() == b.extra_bytes());
  FUZZ_CHECK(a.reusable() == b.reusable());
  if (a.complete()) FUZZ_CHECK(a.extra_bytes() <= body.size());
  else FUZZ_CHECK(a.extra_bytes() == 0);

  if (a.complete() && a.has_content_length() && !a.chunked() && !a.no_body()) {
    std::uint64_t n = 0;
    FUZZ_CHECK(parse_length(fa.value_of("content-length"), n));
    FUZZ_CHECK(whole.bytes.size() == n);
    FUZZ_CHECK(a.extra_bytes() == body.size() - n);
  }
  if (a.no_body()) FUZZ_CHECK(a.complete() && whole.bytes.empty());

  if (a.chunked()) {
    http::chunked_decoder strict;
    std::string strict_bytes;
    auto s = strict.feed(body, &append_sink, &strict_bytes);
    if (s.what == http::chunked_decoder::status::complete) {
      FUZZ_CHECK(a.complete());
      FUZZ_CHECK(whole.bytes == strict_bytes);
      FUZZ_CHECK(a.extra_bytes() == body.size() - s.consumed);
    }
  }

  const bool was_complete = a.complete();
  const bool until_close = a.until_close();
  FUZZ_CHECK(a.finish_at_eof() == b.finish_at_eof());
  if (was_complete || until_close) FUZZ_CHECK(a.complete());
  if (until_close) FUZZ_CHECK(!a.reusable());
}

// Plain responses are read without llhttp (response_reader.hpp): a reader
// that runs llhttp on every response must give the same head, fields and
// body. Only on inputs the fuzzer makes (the unit test in parts_test.cpp
// covers the mutations of known heads).
void check_same_with_llhttp(bool head_request, std::string_view head, proxy::response_reader::head_status st,
                            const http::header_list& fields, const proxy::response_reader& reader,
                            std::string_view body, core::arena& mem) {
  proxy::response_reader always(head_request, proxy::response_reader::llhttp_always_t{});
  http::header_list f2(mem);
  FUZZ_CHECK(always.parse_head(head, f2, max_fields) == st);
  if (st == proxy::response_reader::head_status::error) return;
  FUZZ_CHECK(state_of(always) == state_of(reader));
  FUZZ_CHECK(f2.size() == fields.size());
  for (std::size_t i = 0; i < f2.size(); ++i)
    FUZZ_CHECK(f2.begin()[i].name == fields.begin()[i].name && f2.begin()[i].value == fields.begin()[i].value);
  if (st != proxy::response_reader::head_status::ok) return;
  proxy::response_reader again(head_request);
  http::header_list f3(mem);
  FUZZ_CHECK(again.parse_head(head, f3, max_fields) == st);
  body_result x = decode_body(again, head, body, body.size());
  body_result y = decode_body(always, head, body, body.size());
  FUZZ_CHECK(x.error == y.error && x.bytes == y.bytes);
  if (x.error) return;
  FUZZ_CHECK(again.complete() == always.complete() && again.extra_bytes() == always.extra_bytes() &&
             again.reusable() == always.reusable());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool head_request = (data[0] & 1) != 0;
  const std::size_t cut_sel = data[0] >> 1;  // 0..127
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);

  core::arena mem;
  proxy::response_reader reader(head_request);
  std::size_t start = 0;
  for (;;) {
    const std::string_view window = stream.substr(start);
    const std::size_t end = proxy::find_head_end(window);
    check_head_end(window, end, window.size() * cut_sel / 127);
    if (end == 0) return 0;

    // As the proxy does, parse a copy that holds exactly the head.
    auto copy = exact_copy(window.substr(0, end));
    const std::string_view head(copy.get(), end);
    http::header_list fields(mem);
    auto st = reader.parse_head(head, fields, max_fields);
    FUZZ_CHECK(fields.size() <= max_fields);
    check_same_with_llhttp(head_request, head, st, fields, reader, stream.substr(start + end), mem);
    if (st == proxy::response_reader::head_status::error) return 0;
    check_fields(fields, head, reader);
    FUZZ_CHECK(!has_bare_cr(head) && !has_bare_lf(head));
    start += end;

    const int status = reader.status();
    if (st == proxy::response_reader::head_status::interim) {
      FUZZ_CHECK(status >= 100 && status < 200 && status != 101);
      continue;
    }
    FUZZ_CHECK(status >= 200 && status <= 599);
    FUZZ_CHECK(reader.no_body() == (head_request || status == 204 || status == 304));
    if (reader.no_body()) FUZZ_CHECK(!reader.chunked() && !reader.until_close() && reader.complete());
    FUZZ_CHECK(reader.until_close() == (!reader.no_body() && !reader.chunked() && !reader.has_content_length()));
    FUZZ_CHECK(!(reader.chunked() && reader.has_content_length()));
    for (const auto& f : fields)
      if (http::iequals(f.name, "transfer-encoding")) FUZZ_CHECK(http::iequals(f.value, "chunked"));

    const std::string_view body = stream.substr(start);
    check_body(head_request, head, body, body.size() * cut_sel / 127, reader, mem);
    return 0;
  }
}
