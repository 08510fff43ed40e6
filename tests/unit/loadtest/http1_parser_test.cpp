#include "loadtest/src/http1_parser.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace {

using loadtest::http1_parser;
using loadtest::message_kind;
using loadtest::parse_error;
using loadtest::parse_status;

struct outcome {
  bool complete = false;
  bool error = false;
  int heads = 0;
  std::string body;
  std::size_t leftover = 0;  // bytes after the message, not consumed
};

// Feeds `wire` to the parser in pieces of `piece` bytes, as a connection
// would: unconsumed bytes are kept and the next piece appended to them.
outcome feed(http1_parser& p, std::string_view wire, std::size_t piece) {
  outcome o;
  std::string pending;
  std::size_t offset = 0;
  for (int guard = 0; guard < 1'000'000; ++guard) {
    const auto step = p.parse(pending);
    o.body.append(step.body);  // a view into `pending`: copy before erasing
    pending.erase(0, step.consumed);
    if (step.status == parse_status::head_complete) {
      ++o.heads;
      continue;
    }
    if (step.status == parse_status::body_data) continue;
    if (step.status == parse_status::complete) {
      o.complete = true;
      o.leftover = pending.size() + (wire.size() - offset);
      return o;
    }
    if (step.status == parse_status::error) {
      o.error = true;
      return o;
    }
    if (offset == wire.size()) return o;  // need_more with nothing left to give
    const std::size_t n = std::min(piece, wire.size() - offset);
    pending.append(wire.substr(offset, n));
    offset += n;
  }
  FAIL("parser made no progress");
  return o;
}

}  // namespace

TEST_CASE("parser reads a Content-Length response whole and byte by byte", "[unit][loadtest]") {
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";
  for (std::size_t piece : {wire.size(), std::size_t{1}, std::size_t{3}, std::size_t{17}}) {
    INFO("piece " << piece);
    http1_parser p(message_kind::response);
    const auto o = feed(p, wire, piece);
    CHECK(o.complete);
    CHECK(o.heads == 1);
    CHECK(o.body == "hello");
    CHECK(p.status_code() == 200);
    CHECK(p.keep_alive());
    CHECK(p.content_length() == 5u);
    CHECK(!p.chunked());
  }
}

TEST_CASE("parser reads a chunked response with extensions and trailers split across reads", "[unit][loadtest]") {
  const std::string wire =
      "HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n"
      "A\r\n, chunked!\r\n"
      "0\r\nX-Trailer: yes\r\n\r\n";
  for (std::size_t piece : {wire.size(), std::size_t{1}, std::size_t{2}, std::size_t{7}}) {
    INFO("piece " << piece);
    http1_parser p(message_kind::response);
    const auto o = feed(p, wire, piece);
    CHECK(o.complete);
    CHECK(o.body == "hello, chunked!");
    CHECK(p.status_code() == 201);
    CHECK(p.chunked());
    CHECK(p.body_bytes() == 15);
  }
}

TEST_CASE("parser stops at the end of a response and leaves the next one unconsumed", "[unit][loadtest]") {
  const std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const std::string second = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  http1_parser p(message_kind::response);
  const auto o = feed(p, first + second, first.size() + second.size());
  CHECK(o.complete);
  CHECK(o.body == "ok");
  CHECK(o.leftover == second.size());
  p.reset();
  const auto o2 = feed(p, second, second.size());
  CHECK(o2.complete);
  CHECK(p.status_code() == 404);
}

TEST_CASE("parser skips interim 100 Continue responses", "[unit][loadtest]") {
  const std::string wire = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  http1_parser p(message_kind::response);
  const auto o = feed(p, wire, 5);
  CHECK(o.complete);
  CHECK(o.heads == 1);
  CHECK(p.status_code() == 200);
  CHECK(p.interim_responses() == 1);
  CHECK(o.body == "ok");
}

TEST_CASE("parser treats HEAD, 204 and 304 responses as bodiless", "[unit][loadtest]") {
  {
    http1_parser p(message_kind::response);
    p.set_no_body_expected(true);
    const auto o = feed(p, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 64);
    CHECK(o.complete);
    CHECK(o.body.empty());
  }
  for (const char* wire : {"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", "HTTP/1.1 304 Not Modified\r\n\r\n"}) {
    http1_parser p(message_kind::response);
    const auto o = feed(p, wire, 64);
    CHECK(o.complete);
    CHECK(o.body.empty());
  }
}

TEST_CASE("parser reads a response without length until the connection closes", "[unit][loadtest]") {
  http1_parser p(message_kind::response);
  const auto o = feed(p, "HTTP/1.0 200 OK\r\n\r\nsome body", 4);
  CHECK(!o.complete);
  CHECK(o.body == "some body");
  CHECK(p.body_until_eof());
  CHECK(!p.keep_alive());
  CHECK(p.finish_on_eof());
  CHECK(p.complete());
}

TEST_CASE("parser reports a response cut short by the close as incomplete", "[unit][loadtest]") {
  http1_parser p(message_kind::response);
  const auto o = feed(p, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 64);
  CHECK(!o.complete);
  CHECK(!o.error);
  CHECK(!p.finish_on_eof());
}

TEST_CASE("parser derives keep-alive from the version and the Connection header", "[unit][loadtest]") {
  struct row {
    const char* wire;
    bool keep_alive;
  };
  for (const row& r : {row{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
                       row{"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n", false},
                       row{"HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 0\r\n\r\n", false},
                       row{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
                       row{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true}}) {
    INFO(r.wire);
    http1_parser p(message_kind::response);
    CHECK(feed(p, r.wire, 1000).complete);
    CHECK(p.keep_alive() == r.keep_alive);
  }
}

TEST_CASE("parser rejects malformed framing", "[unit][loadtest]") {
  struct row {
    const char* wire;
    parse_error error;
  };
  for (const row& r : {row{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", parse_error::bad_content_length},
                       row{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", parse_error::bad_content_length},
                       row{"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", parse_error::bad_content_length},
                       row{"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", parse_error::bad_header},
                       row{"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", parse_error::bad_header},
                       row{"HTTP/2 200\r\n\r\n", parse_error::bad_start_line},
                       row{"HTTP/1.1 2x0 OK\r\n\r\n", parse_error::bad_start_line},
                       row{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", parse_error::bad_chunk},
                       row{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", parse_error::bad_chunk},
                       row{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", parse_error::bad_chunk}}) {
    INFO(r.wire);
    http1_parser p(message_kind::response);
    const auto o = feed(p, r.wire, 3);
    CHECK(o.error);
    CHECK(p.error() == r.error);
  }
}

TEST_CASE("parser limits the size of a head", "[unit][loadtest]") {
  http1_parser p(message_kind::response, 256);
  std::string wire = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 20; ++i) wire += "X-Filler: 0123456789\r\n";
  wire += "\r\n";
  const auto o = feed(p, wire, 10);
  CHECK(o.error);
  CHECK(p.error() == parse_error::head_too_large);
}

TEST_CASE("parser reads requests with Content-Length, chunked or no body", "[unit][loadtest]") {
  {
    http1_parser p(message_kind::request);
    const auto o = feed(p, "\r\nPOST /api/x?y=1 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", 4);
    CHECK(o.complete);
    CHECK(p.method() == "POST");
    CHECK(p.expect_continue());
    CHECK(o.body == "abc");
  }
  {
    http1_parser p(message_kind::request);
    const auto o = feed(p, "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 1);
    CHECK(o.complete);
    CHECK(o.body == "abc");
    CHECK(p.chunked());
  }
  {
    http1_parser p(message_kind::request);
    const auto o = feed(p, "GET / HTTP/1.0\r\n\r\n", 100);
    CHECK(o.complete);
    CHECK(p.method() == "GET");
    CHECK(!p.keep_alive());
    CHECK(o.body.empty());
  }
  {
    http1_parser p(message_kind::request);
    const auto o = feed(p, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 100);
    CHECK(o.error);
    CHECK(p.error() == parse_error::bad_transfer_encoding);
  }
  {
    http1_parser p(message_kind::request);
    CHECK(feed(p, "GET  / HTTP/1.1\r\n\r\n", 100).error);
    CHECK(p.error() == parse_error::bad_start_line);
  }
}
