// Malformed request heads over real sockets: each gets its status, the
// connection is closed, nothing reaches a handler, and the server keeps
// serving. Includes the places where llhttp 8.1 alone would be lenient.
#include <catch2/catch.hpp>

#include "tests/integration/core/test_handlers.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;

namespace {
struct bad_case {
  const char* name;
  std::string raw;
  int status;
};
}  // namespace

TEST_CASE("malformed request heads get 400 (or their specific status) and never crash", "[integration][core]") {
  const std::vector<bad_case> cases = {
      {"whitespace before header colon", "GET /echo/a HTTP/1.1\r\nHost: t\r\nX-Foo : bar\r\n\r\n", 400},
      {"tab before header colon", "GET /echo/a HTTP/1.1\r\nHost: t\r\nX-Foo\t: bar\r\n\r\n", 400},
      {"missing Host in HTTP/1.1", "GET /echo/a HTTP/1.1\r\nX-Foo: bar\r\n\r\n", 400},
      {"repeated Host", "GET /echo/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"control character in header value", std::string("GET /echo/a HTTP/1.1\r\nHost: t\r\nX-A: a\x01" "z\r\n\r\n"), 400},
      {"NUL in header value", std::string("GET /echo/a HTTP/1.1\r\nHost: t\r\nX-A: a") + '\0' + "z\r\n\r\n", 400},
      {"DEL in header value", "GET /echo/a HTTP/1.1\r\nHost: t\r\nX-A: a\x7f" "z\r\n\r\n", 400},
      {"control character in header name", "GET /echo/a HTTP/1.1\r\nHost: t\r\nX\x02" "A: b\r\n\r\n", 400},
      {"obs-fold continuation line", "GET /echo/a HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\n\r\n", 400},
      {"obs-fold with tab", "GET /echo/a HTTP/1.1\r\nHost: t\r\nX-A: one\r\n\ttwo\r\n\r\n", 400},
      {"bare LF line endings", "GET /echo/a HTTP/1.1\nHost: t\n\n", 400},
      {"bare LF inside the head", "GET /echo/a HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n", 400},
      {"bare CR inside the head", "GET /echo/a HTTP/1.1\r\nHost: t\rX-A: b\r\n\r\n", 400},
      {"header line without colon", "GET /echo/a HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n", 400},
      {"empty header name", "GET /echo/a HTTP/1.1\r\nHost: t\r\n: value\r\n\r\n", 400},
      {"double space in request line", "GET  /echo/a HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      {"missing version", "GET /echo/a\r\nHost: t\r\n\r\n", 400},
      {"lowercase version", "GET /echo/a http/1.1\r\nHost: t\r\n\r\n", 400},
      {"garbage version", "GET /echo/a HTTP/1.x\r\nHost: t\r\n\r\n", 400},
      {"space in target", "GET /echo/a b HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      {"fragment in target", "GET /echo/a#frag HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      {"non-ASCII in target", "GET /echo/\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      {"invalid method characters", "GE(T /echo/a HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      {"Content-Length with a sign", "POST /echo/a HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello", 400},
      {"Content-Length not a number", "POST /echo/a HTTP/1.1\r\nHost: t\r\nContent-Length: five\r\n\r\n", 400},
      {"repeated Content-Length", "POST /echo/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
      {"Content-Length list", "POST /echo/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello", 400},
      {"Content-Length and Transfer-Encoding",
       "POST /echo/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"Transfer-Encoding in HTTP/1.0", "POST /echo/a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"repeated Transfer-Encoding",
       "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"bad chunk size", "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
      {"chunk missing CRLF after data",
       "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400},
      {"chunk size followed by bare LF",
       "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400},
      {"chunk size overflow",
       "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", 400},
      {"negative chunk size",
       "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400},
      {"Host with a slash", "GET /echo/a HTTP/1.1\r\nHost: evil/x\r\n\r\n", 400},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
      {"HTTP/3.0 version", "GET /echo/a HTTP/3.0\r\nHost: t\r\n\r\n", 505},
      {"unknown transfer coding", "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
      // Not ending in chunked: the length is unknown (RFC 9112 section 6.3).
      {"obfuscated transfer coding", "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
      {"coding we do not decode before chunked", "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
      {"unknown method", "FROB /echo/a HTTP/1.1\r\nHost: t\r\n\r\n", 501},
      {"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501},
      {"unsupported expectation", "POST /echo/a HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417},
      {"head larger than the limit", "GET /echo/a HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431},
      {"too many header fields", [] {
         std::string s = "GET /echo/a HTTP/1.1\r\nHost: t\r\n";
         for (int i = 0; i < 150; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
         return s + "\r\n";
       }(), 431},
  };
  REQUIRE(cases.size() >= 25);

  test::running_server srv(test::test_config(), test::test_chain());
  for (const auto& c : cases) {
    INFO("case: " << c.name);
    test::raw_client client(srv.port());
    client.send(c.raw);
    auto r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == c.status);
    CHECK(r->header("Connection") == "close");
    CHECK(client.wait_closed());
  }
  // Still serving, and nothing crashed.
  auto ok = test::http_request(srv.port(), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(srv.server().live().session_exceptions == 0);
}

TEST_CASE("well-formed edge cases are accepted", "[integration][core]") {
  test::running_server srv(test::test_config(), test::test_chain());
  struct good_case {
    const char* name;
    std::string raw;
    std::string body;
  };
  const std::vector<good_case> cases = {
      {"leading empty line", "\r\nGET /echo/a HTTP/1.1\r\nHost: t\r\n\r\n", "GET /echo/a 0 0\n"},
      {"header value with inner spaces and tabs", "GET /echo/a HTTP/1.1\r\nHost: t\r\nX-A:  a \t b \r\n\r\n",
       "GET /echo/a 0 0\n"},
      {"obs-text in a header value", "GET /echo/a HTTP/1.1\r\nHost: t\r\nX-A: caf\xc3\xa9\r\n\r\n", "GET /echo/a 0 0\n"},
      {"query string", "GET /echo/a?x=1&y=%20 HTTP/1.1\r\nHost: t\r\n\r\n", "GET /echo/a?x=1&y=%20 0 0\n"},
      {"HTTP/1.0 without Host", "GET /echo/a HTTP/1.0\r\n\r\n", "GET /echo/a 0 0\n"},
      {"chunked with extension and trailer",
       "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: v\r\n\r\n",
       "POST /echo/a 5 " + std::to_string(test::checksum("hello")) + "\n"},
      {"Transfer-Encoding chunked in upper case",
       "POST /echo/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", "POST /echo/a 0 0\n"},
      {"absolute-form target", "GET http://t/echo/abs HTTP/1.1\r\nHost: t\r\n\r\n", "GET http://t/echo/abs 0 0\n"},
  };
  for (const auto& c : cases) {
    INFO("case: " << c.name);
    auto r = test::http_request(srv.port(), c.raw);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == c.body);
  }
}
