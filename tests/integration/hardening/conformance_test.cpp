// Request framing and smuggling conformance: raw requests over real sockets
// to the whole gateway in front of a recording backend. For each case: the
// status the client gets and, above all, what reached the backend. Several
// cases hide a second request ("/smuggled") where a lenient or differently
// framing hop would see one; it must never reach the backend.
#include <catch2/catch.hpp>

#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

struct conformance_case {
  const char* name;
  std::string raw;
  int status;               // of the first response
  std::size_t forwarded;    // requests the backend must receive
  std::string body = {};    // when forwarded == 1: the body the backend must get
};

const std::string K = "X-API-Key: k\r\n";
// Would be forwarded if a hop ever parsed it as a request of its own.
const std::string smuggled = "GET /api/smuggled HTTP/1.1\r\nHost: t\r\n" + K + "\r\n";
// A request the client really pipelines after a complete one.
const std::string pipelined = "GET /api/next HTTP/1.1\r\nHost: t\r\n" + K + "\r\n";

std::string post(std::string_view headers, std::string_view body) {
  return "POST /api/c HTTP/1.1\r\nHost: t\r\n" + K + std::string(headers) + "\r\n" + std::string(body);
}

std::vector<conformance_case> cases() {
  std::vector<conformance_case> v = {
      // Content-Length and Transfer-Encoding together, either order, with a hidden request.
      {"CL then TE", post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n" + smuggled), 400, 0},
      {"TE then CL", post("Transfer-Encoding: chunked\r\nContent-Length: 6\r\n", "0\r\n\r\n" + smuggled), 400, 0},
      {"CL duplicate, different values", post("Content-Length: 5\r\nContent-Length: 40\r\n", "hello" + smuggled), 400, 0},
      {"CL duplicate, same values", post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), 400, 0},
      {"CL list", post("Content-Length: 5, 5\r\n", "hello"), 400, 0},
      {"CL negative", post("Content-Length: -5\r\n", "hello"), 400, 0},
      {"CL with plus sign", post("Content-Length: +5\r\n", "hello"), 400, 0},
      {"CL hexadecimal", post("Content-Length: 0x5\r\n", "hello"), 400, 0},
      {"CL with inner space", post("Content-Length: 1 0\r\n", "0123456789"), 400, 0},
      {"CL overflowing 64 bits", post("Content-Length: 99999999999999999999\r\n", "hello"), 400, 0},
      {"CL empty", post("Content-Length: \r\n", ""), 400, 0},
      {"CL with trailing whitespace (OWS)", post("Content-Length: 5 \r\n", "hello"), 200, 1, "hello"},
      {"CL with tabs and spaces around it (OWS)", post("Content-Length: \t5\t \r\n", "hello"), 200, 1, "hello"},
      {"CL with leading zeros", post("Content-Length: 005\r\n", "hello"), 200, 1, "hello"},
      {"CL over the body limit", post("Content-Length: 20971520\r\n", "x"), 413, 0},
      {"CL shorter than the data: the rest is a pipelined request",
       post("Content-Length: 5\r\n", "hello" + pipelined), 200, 2, "hello"},
      // Transfer-Encoding obfuscations.
      {"TE chunked twice in one field", post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), 501, 0},
      {"TE in two fields", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400, 0},
      // RFC 9112 section 6.3: a final coding other than chunked leaves the length unknown: 400.
      {"TE xchunked", post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 400, 0},
      {"TE chunked, then gzip", post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n" + smuggled), 400, 0},
      {"TE chunked with a parameter", post("Transfer-Encoding: chunked;q=1\r\n", "0\r\n\r\n"), 501, 0},
      {"TE gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 501, 0},
      {"TE identity", post("Transfer-Encoding: identity\r\n", "hello"), 400, 0},
      {"TE with space before colon", post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), 400, 0},
      {"TE folded onto the next line", post("Transfer-Encoding:\r\n chunked\r\n", "0\r\n\r\n"), 400, 0},
      {"TE with a vertical tab", post("Transfer-Encoding:\x0b" "chunked\r\n", "0\r\n\r\n"), 400, 0},
      {"TE in HTTP/1.0", "POST /api/c HTTP/1.0\r\n" + K + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 0},
      {"TE upper case is still chunked", post("Transfer-Encoding: CHUNKED\r\n", "5\r\nhello\r\n0\r\n\r\n"), 200, 1, "hello"},
      {"TE with surrounding OWS", post("Transfer-Encoding: \tchunked \r\n", "5\r\nhello\r\n0\r\n\r\n"), 200, 1, "hello"},
      // Some backends map '_' to '-' (CGI-style variables): refuse the look-alikes.
      {"Transfer_Encoding look-alike",
       post("Transfer_Encoding: chunked\r\nContent-Length: 5\r\n", "hello"), 400, 0},
      // Chunked framing.
      {"chunk size in upper-case hex", post("Transfer-Encoding: chunked\r\n", "A\r\n0123456789\r\n0\r\n\r\n"), 200, 1,
       "0123456789"},
      {"chunk extension", post("Transfer-Encoding: chunked\r\n", "5;name=value\r\nhello\r\n0\r\n\r\n"), 200, 1, "hello"},
      {"chunk extension after BWS", post("Transfer-Encoding: chunked\r\n", "5 ;x\r\nhello\r\n0\r\n\r\n"), 200, 1, "hello"},
      {"whitespace after a chunk size, then the line end",
       post("Transfer-Encoding: chunked\r\n", "5 \t\r\nhello\r\n0\r\n\r\n"), 200, 1, "hello"},
      {"whitespace after a chunk size, then no ';'", post("Transfer-Encoding: chunked\r\n", "5 zz\r\nhello\r\n0\r\n\r\n"), 400, 0},
      {"chunk size with leading space", post("Transfer-Encoding: chunked\r\n", " 5\r\nhello\r\n0\r\n\r\n"), 400, 0},
      {"chunk size missing", post("Transfer-Encoding: chunked\r\n", "\r\nhello\r\n0\r\n\r\n"), 400, 0},
      {"chunk size not hex", post("Transfer-Encoding: chunked\r\n", "5g\r\nhello\r\n0\r\n\r\n"), 400, 0},
      {"chunk size negative", post("Transfer-Encoding: chunked\r\n", "-5\r\nhello\r\n0\r\n\r\n"), 400, 0},
      {"chunk size overflowing", post("Transfer-Encoding: chunked\r\n", "1000000000000000005\r\nhello\r\n0\r\n\r\n"), 400, 0},
      {"chunk size ended by bare LF", post("Transfer-Encoding: chunked\r\n", "5\nhello\r\n0\r\n\r\n"), 400, 0},
      {"chunk data longer than its size", post("Transfer-Encoding: chunked\r\n", "3\r\nhello\r\n0\r\n\r\n"), 400, 0},
      {"chunk data without CRLF, hiding a request",
       post("Transfer-Encoding: chunked\r\n", "5\r\nhelloXX0\r\n\r\n" + smuggled), 400, 0},
      {"chunk data ended by bare LF", post("Transfer-Encoding: chunked\r\n", "5\r\nhello\n0\r\n\r\n"), 400, 0},
      {"control byte in a chunk extension", post("Transfer-Encoding: chunked\r\n", "5;a\x01" "b\r\nhello\r\n0\r\n\r\n"), 400, 0},
      {"chunk extension too long", post("Transfer-Encoding: chunked\r\n", "5;" + std::string(5000, 'a') + "\r\nhello\r\n0\r\n\r\n"),
       400, 0},
      {"trailer field kept out of the forwarded request",
       post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\nX-Trailer: v\r\n\r\n"), 200, 1, "hello"},
      {"trailer line that is a request line",
       post("Transfer-Encoding: chunked\r\n", "0\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"), 400, 0},
      {"trailer section too large", post("Transfer-Encoding: chunked\r\n", "0\r\nX: " + std::string(20000, 'a') + "\r\n\r\n"),
       400, 0},
      {"chunked body over the limit", post("Transfer-Encoding: chunked\r\n", "1400001\r\n" + std::string(64, 'a')), 413, 0},
      {"a request after the last chunk is pipelined, not smuggled",
       post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n" + pipelined), 200, 2, "hello"},
      // Line endings and field syntax.
      {"bare LF line endings", "GET /api/c HTTP/1.1\nHost: t\n" + std::string("X-API-Key: k\n\n"), 400, 0},
      {"bare CR inside a field", "GET /api/c HTTP/1.1\r\nHost: t\r\n" + K + "X-A: a\rb\r\n\r\n", 400, 0},
      {"whitespace before a colon", "GET /api/c HTTP/1.1\r\nHost: t\r\n" + K + "X-A : b\r\n\r\n", 400, 0},
      {"obs-fold", "GET /api/c HTTP/1.1\r\nHost: t\r\n" + K + "X-A: b\r\n c\r\n\r\n", 400, 0},
      {"NUL in a field value", std::string("GET /api/c HTTP/1.1\r\nHost: t\r\n") + K + "X-A: a" + '\0' + "b\r\n\r\n", 400, 0},
      {"invalid byte in a field name", "GET /api/c HTTP/1.1\r\nHost: t\r\n" + K + "X(A): b\r\n\r\n", 400, 0},
      {"field line without a colon", "GET /api/c HTTP/1.1\r\nHost: t\r\n" + K + "junk\r\n\r\n", 400, 0},
      {"obs-text in a value is forwarded", "GET /api/c HTTP/1.1\r\nHost: t\r\n" + K + "X-A: caf\xc3\xa9\r\n\r\n", 200, 1},
      {"leading empty line is ignored", "\r\nGET /api/c HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 200, 1},
      // Host.
      {"missing Host in HTTP/1.1", "GET /api/c HTTP/1.1\r\n" + K + "\r\n", 400, 0},
      {"two Host fields", "GET /api/c HTTP/1.1\r\nHost: a\r\nHost: b\r\n" + K + "\r\n", 400, 0},
      {"Host with whitespace inside", "GET /api/c HTTP/1.1\r\nHost: a b\r\n" + K + "\r\n", 400, 0},
      {"Host with userinfo", "GET /api/c HTTP/1.1\r\nHost: user@evil\r\n" + K + "\r\n", 400, 0},
      {"empty Host", "GET /api/c HTTP/1.1\r\nHost:\r\n" + K + "\r\n", 400, 0},
      // Method, target, version.
      {"invalid method token", "G@T /api/c HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 400, 0},
      {"lower-case method", "get /api/c HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 501, 0},
      {"unknown method", "BREW /api/c HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 501, 0},
      {"tab between method and target", "GET\t/api/c HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 400, 0},
      {"trailing space after the version", "GET /api/c HTTP/1.1 \r\nHost: t\r\n" + K + "\r\n", 400, 0},
      {"space inside the target", "GET /api/c d HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 400, 0},
      {"fragment in the target", "GET /api/c#x HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 400, 0},
      {"asterisk target with GET", "GET * HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 400, 0},
      {"HTTP/0.9 version", "GET /api/c HTTP/0.9\r\nHost: t\r\n" + K + "\r\n", 505, 0},
      {"HTTP/2.0 version", "GET /api/c HTTP/2.0\r\nHost: t\r\n" + K + "\r\n", 505, 0},
      {"HTTP/1.2 version is served as 1.1", "GET /api/c HTTP/1.2\r\nHost: t\r\n" + K + "\r\n", 200, 1},
      // Refused when the line ends, not after the header timeout (10 s; the client waits 5).
      {"HTTP/0.9 request line", "GET /api/c\r\n", 400, 0},
      {"absolute-form target", "GET http://t/api/abs HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 200, 1},
      {"target longer than the head limit", "GET /api/" + std::string(17000, 'a') + " HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 414, 0},
      {"target over --max-target (8 KiB), head within its limit",
       "GET /api/" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 414, 0},
      {"head over the limit in its fields", "GET /api/c HTTP/1.1\r\nHost: t\r\n" + K + "X-Big: " + std::string(17000, 'b') + "\r\n\r\n",
       431, 0},
      {"dot-segments are resolved before routing", "GET /api/a/../c HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 200, 1},
      {"a path climbing above the root", "GET /api/../../c HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 400, 0},
      {"too many fields", [] {
         std::string s = "GET /api/c HTTP/1.1\r\nHost: t\r\n" + K;
         for (int i = 0; i < 120; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
         return s + "\r\n";
       }(), 431, 0},
      // Persistence and expectations.
      {"two pipelined GETs are both forwarded, in order",
       "GET /api/one HTTP/1.1\r\nHost: t\r\n" + K + "\r\nGET /api/two HTTP/1.1\r\nHost: t\r\n" + K + "\r\n", 200, 2},
      {"Connection: close ends after one request even with more bytes",
       "GET /api/one HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + K + "\r\n" + smuggled, 200, 1},
      {"unsupported expectation", post("Expect: 200-ok\r\nContent-Length: 5\r\n", "hello"), 417, 0},
      {"Content_Length look-alike", post("Content_Length: 5\r\n", "hello"), 400, 0},
      {"GET with a body keeps its body", "GET /api/c HTTP/1.1\r\nHost: t\r\n" + K + "Content-Length: 5\r\n\r\nhello", 200, 1,
       "hello"},
  };
  return v;
}

}  // namespace

TEST_CASE("framing and smuggling conformance: status to the client, and what reached the backend",
          "[integration][hardening]") {
  auto all = cases();
  REQUIRE(all.size() >= 87);
  for (const auto& c : all) {
    INFO("case: " << c.name);
    test::recording_backend backend;
    auto cfg = test::test_config();
    cfg.backend = backend.url();
    cfg.api_keys = {"k"};
    test::running_server srv(cfg);
    test::raw_client client(srv.port(), 5000ms);
    client.send(c.raw);
    auto r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == c.status);
    // Read whatever else comes (a pipelined answer), then let the backend settle.
    for (std::size_t i = 1; i < c.forwarded; ++i) CHECK(client.read_response());
    srv.stop_and_wait();
    auto got = backend.requests();
    CHECK(got.size() == c.forwarded);
    for (const auto& g : got) {
      CHECK(g.target.find("smuggled") == std::string::npos);
      // Whatever reached the backend is framed by Content-Length alone.
      CHECK(g.head.find("Transfer-Encoding") == std::string::npos);
    }
    if (c.forwarded == 1 && !c.body.empty() && !got.empty()) CHECK(got[0].body == c.body);
  }
}

TEST_CASE("a Transfer-Encoding whose final coding is not chunked gets 400 and the connection closes",
          "[integration][hardening]") {
  test::recording_backend backend;
  auto cfg = test::test_config();
  cfg.backend = backend.url();
  cfg.api_keys = {"k"};
  test::running_server srv(cfg);
  test::raw_client client(srv.port(), 5000ms);
  client.send(post("Transfer-Encoding: gzip\r\n", "hello") + pipelined);
  auto r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->header("Connection") == "close");
  CHECK(client.wait_closed());
  CHECK(backend.request_count() == 0);
}
