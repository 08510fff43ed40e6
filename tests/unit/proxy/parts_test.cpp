// The proxy's pieces on their own, without sockets: backend URL parsing, the
// response reader's in-place decoding and reuse decision, hop-by-hop fields.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "gateway/http/syntax.hpp"
#include "gateway/core/arena.hpp"
#include "gateway/http/header_list.hpp"
#include "gateway/proxy/backend_address.hpp"
#include "gateway/proxy/request_writer.hpp"
#include "tests/support/mutate.hpp"
#include "gateway/proxy/response_reader.hpp"
#include "gateway/proxy/tunnel.hpp"

using namespace gateway;

TEST_CASE("backend URLs are parsed once: numeric addresses, names left for the resolver, and clear errors",
          "[unit][proxy]") {
  auto a = proxy::parse_backend_url("http://127.0.0.1:9000");
  CHECK(a.endpoint.address().to_string() == "127.0.0.1");
  CHECK(a.endpoint.port() == 9000);
  CHECK(a.authority == "127.0.0.1:9000");
  auto b = proxy::parse_backend_url("http://[::1]:81/");
  CHECK(b.endpoint.address().to_string() == "::1");
  CHECK(b.endpoint.port() == 81);
  // A name is kept for the resolver, never resolved here.
  auto c = proxy::parse_backend_url("http://localhost:8081");
  CHECK(c.host == "localhost");
  CHECK(c.port == 8081);
  CHECK(c.authority == "localhost:8081");
  CHECK(proxy::parse_backend_url("http://api.svc_1-a.example:80").host == "api.svc_1-a.example");
  CHECK(a.host.empty());
  CHECK(b.host.empty());
  CHECK(proxy::parse_backend_url("http://10.1.2.3").endpoint.port() == 80);
  CHECK_FALSE(a.tls);
  // https: TLS to the backend, default port 443; the certificate must name
  // the host, or the numeric address.
  auto d = proxy::parse_backend_url("https://10.1.2.3");
  CHECK(d.tls);
  CHECK(d.endpoint.port() == 443);
  CHECK(d.host.empty());
  CHECK(d.tls_name() == "10.1.2.3");
  auto e = proxy::parse_backend_url("https://localhost:8443/");
  CHECK(e.tls);
  CHECK(e.endpoint.port() == 8443);
  CHECK(e.host == "localhost");
  CHECK(e.tls_name() == "localhost");
  CHECK(e.authority == "localhost:8443");
  CHECK(proxy::parse_backend_url("https://[::1]:9443").tls_name() == "::1");
  // A bracketed address without a port takes the scheme's.
  CHECK(proxy::parse_backend_url("https://[::1]").endpoint.port() == 443);
  CHECK(proxy::parse_backend_url("http://[::1]/").endpoint.port() == 80);
  CHECK(proxy::parse_backend_url("http://[::1]/").authority == "[::1]");
  for (const char* bad :
       {"127.0.0.1:80", "ftp://127.0.0.1:21", "https://", "https://127.0.0.1:0", "http://", "http://127.0.0.1:0",
        "http://127.0.0.1:70000", "http://127.0.0.1:80/path", "http://127.0.0.1:x", "http://[::1",
        "http://[::1]:", "http://[::1]x", "http://user@127.0.0.1:80", "http://127.0.0.1:", "http://[name]:80",
        "http://bad!name:80", "http://sp ace:80"}) {
    INFO(bad);
    CHECK_THROWS_AS(proxy::parse_backend_url(bad), std::invalid_argument);
  }
  // An IPv6 address outside brackets could end in a port or not: refused, saying how to write it.
  for (const char* unbracketed : {"http://::1:8080", "https://::1", "http://fe80::1:80"}) {
    INFO(unbracketed);
    try {
      proxy::parse_backend_url(unbracketed);
      FAIL("accepted");
    } catch (const std::invalid_argument& refused) {
      CHECK(std::string(refused.what()).find("an IPv6 address goes in brackets, like http://[::1]:8080") !=
            std::string::npos);
    }
  }
}

TEST_CASE("the response reader decodes chunked bodies in place, fed a byte at a time or all at once",
          "[unit][proxy]") {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A:  spaced  \r\n\r\n";
  const std::string body = "3\r\nabc\r\n1;x=y\r\nd\r\n0\r\nT: 1\r\n\r\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{7}, body.size()}) {
    INFO("step " << step);
    core::arena mem;
    http::header_list fields(mem);
    proxy::response_reader reader(false);
    REQUIRE(proxy::find_head_end(head + body) == head.size());
    REQUIRE(reader.parse_head(head, fields, 100) == proxy::response_reader::head_status::ok);
    CHECK(reader.chunked());
    CHECK(fields.value_of("x-a") == "spaced");
    std::string raw = body + "EXTRA", out;
    std::size_t pos = 0;
    while (pos < raw.size() && !reader.complete()) {
      std::size_t n = std::min(step, raw.size() - pos);
      auto d = reader.decode(raw.data() + pos, raw.data() + pos, n);  // in place
      REQUIRE_FALSE(d.error);
      out.append(raw.data() + pos, d.size);
      pos += n;
    }
    CHECK(out == "abcd");
    CHECK(reader.complete());
    if (pos < raw.size()) reader.decode(raw.data() + pos, raw.data() + pos, raw.size() - pos);
    CHECK(reader.extra_bytes() == 5);
    CHECK_FALSE(reader.reusable());  // bytes after the message: never reuse
  }
}

TEST_CASE("the response reader knows when a connection may be reused", "[unit][proxy]") {
  struct tc {
    const char* head;
    bool head_request;
    bool reusable;
  } cases[] = {
      {"HTTP/1.1 204 No Content\r\n\r\n", false, true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false, false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", false, true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true, true},
  };
  for (const auto& c : cases) {
    INFO(c.head);
    core::arena mem;
    http::header_list fields(mem);
    proxy::response_reader reader(c.head_request);
    REQUIRE(reader.parse_head(c.head, fields, 100) == proxy::response_reader::head_status::ok);
    CHECK(reader.complete());
    CHECK(reader.reusable() == c.reusable);
  }
  core::arena mem;
  http::header_list fields(mem);
  proxy::response_reader reader(false);
  CHECK(reader.parse_head("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", fields, 2) ==
        proxy::response_reader::head_status::error);
  CHECK(reader.parse_head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", fields, 10) ==
        proxy::response_reader::head_status::error);
  CHECK(reader.parse_head("HTTP/1.1 103 Early Hints\r\n\r\n", fields, 10) ==
        proxy::response_reader::head_status::interim);
}

TEST_CASE("the response reader closes after a chunked HTTP/1.0 response and refuses chunked in two fields",
          "[unit][proxy]") {
  // RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing; read the
  // body as chunked, then close, even when the backend said keep-alive.
  for (const char* version : {"HTTP/1.0", "HTTP/1.1"}) {
    INFO(version);
    core::arena mem;
    http::header_list fields(mem);
    proxy::response_reader reader(false);
    const std::string head =
        std::string(version) + " 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";
    REQUIRE(reader.parse_head(head, fields, 100) == proxy::response_reader::head_status::ok);
    std::string body = "2\r\nok\r\n0\r\n\r\n";
    const auto d = reader.decode(body.data(), body.data(), body.size());
    REQUIRE_FALSE(d.error);
    CHECK(body.substr(0, d.size) == "ok");
    CHECK(reader.complete());
    CHECK(reader.reusable() == (std::string(version) == "HTTP/1.1"));
  }
  // Two fields that each say chunked are as malformed as "chunked, chunked" in one.
  for (const char* te :
       {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: chunked\r\ntransfer-encoding: chunked\r\n"}) {
    INFO(te);
    core::arena mem;
    http::header_list fields(mem);
    proxy::response_reader reader(false);
    CHECK(reader.parse_head(std::string("HTTP/1.1 200 OK\r\n") + te + "\r\n", fields, 100) ==
          proxy::response_reader::head_status::error);
  }
}

TEST_CASE("is_hop_by_hop knows the fixed list and the fields Connection names", "[unit][proxy]") {
  core::arena mem;
  http::header_list h(mem);
  h.add("Connection", "close, X-Foo");
  h.add("connection", " x-bar ");
  for (const char* n : {"Connection", "keep-alive", "Proxy-Connection", "te", "Trailer", "TRANSFER-ENCODING",
                        "Upgrade", "x-foo", "X-Bar"})
    CHECK(http::is_hop_by_hop(n, h));
  for (const char* n : {"Host", "Content-Length", "X-Foobar", "Trailers", "Close2"}) CHECK_FALSE(http::is_hop_by_hop(n, h));
  // A Connection that names Content-Length does not make it hop-by-hop: it
  // frames the forwarded body.
  h.add("Connection", "Content-Length");
  CHECK_FALSE(http::is_hop_by_hop("content-length", h));
}

TEST_CASE("a WebSocket upgrade is told by Upgrade and the upgrade option of any Connection field", "[unit][proxy]") {
  core::arena mem;
  auto request = [&](std::initializer_list<std::pair<const char*, const char*>> fields) {
    http::request req;
    req.headers = http::header_list(mem);
    req.upgrade = true;
    for (const auto& [n, v] : fields) req.headers.add(n, v);
    return req;
  };
  CHECK(proxy::is_websocket_upgrade(request({{"Connection", "Upgrade"}, {"Upgrade", "websocket"}})));
  CHECK(proxy::is_websocket_upgrade(
      request({{"Connection", "keep-alive"}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"}})));
  CHECK_FALSE(proxy::is_websocket_upgrade(request({{"Connection", "keep-alive"}, {"Upgrade", "websocket"}})));
  CHECK_FALSE(proxy::is_websocket_upgrade(request({{"Connection", "Upgrade"}, {"Upgrade", "h2c"}})));
}

namespace {

// Everything a reader reports about one response (head, then the body fed
// in two pieces with the bytes that follow it), as text, so two readers'
// answers compare in one CHECK and print readably when they differ.
std::string read_response(proxy::response_reader& r, std::string_view head, std::string_view rest, std::size_t cut,
                          std::uint32_t max_fields) {
  core::arena mem;
  http::header_list fields(mem);
  const auto st = r.parse_head(head, fields, max_fields);
  std::string s = "head=" + std::to_string(static_cast<int>(st));
  if (st != proxy::response_reader::head_status::ok) return s;
  s += " status=" + std::to_string(r.status()) + " reason=" + std::string(r.reason()) +
       " complete=" + std::to_string(r.complete()) + " chunked=" + std::to_string(r.chunked()) +
       " cl=" + std::to_string(r.has_content_length()) + " close=" + std::to_string(r.until_close()) +
       " nobody=" + std::to_string(r.no_body());
  for (const auto& f : fields) s += " [" + std::string(f.name) + "=" + std::string(f.value) + "]";
  std::string buf(rest);
  cut = std::min(cut, buf.size());
  auto d = r.decode(buf.data(), buf.data(), cut);
  // Appended piece by piece (g++ 12's false -Wrestrict on "literal" + std::string&&).
  s.append(" body=").append(buf, 0, d.size).append(" err=").append(std::to_string(d.error));
  if (!d.error) {
    auto e = r.decode(buf.data() + d.size, buf.data() + cut, buf.size() - cut);
    s.append("+").append(buf, d.size, e.size).append(" err=").append(std::to_string(e.error));
  }
  s += " complete=" + std::to_string(r.complete()) + " extra=" + std::to_string(r.extra_bytes()) +
       " reusable=" + std::to_string(r.reusable()) + " eof=" + std::to_string(r.finish_at_eof());
  return s;
}

}  // namespace

// Plain responses are read without llhttp (response_reader.hpp). On every
// head here, the seeds and some 50,000 mutations of them, with and without
// HEAD, the reader must answer exactly as one that runs llhttp on every
// response does, for the head, the body in pieces and what follows it.
TEST_CASE("the response reader answers as with llhttp on every head, for plain ones it reads alone",
          "[unit][proxy]") {
  const std::vector<std::string> seeds = {
      "HTTP/1.1 200 OK\r\nServer: echo_backend\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 201 Created\r\nContent-Length:  007 \r\nX-A:\t b \t\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\n",
      "HTTP/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 599 x\x80\xff y \r\nContent-Length: 3\r\nKeep-Alive: timeout=5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\t\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length:\t2\r\n\r\n",
      "HTTP/1.1 200  OK\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 \tOK\r\nContent-Length: 2\r\n\r\n",
  };
  const std::vector<std::string> lines = {
      "Connection: keep-alive", "Connection: close", "Proxy-Connection: close", "Upgrade: h2c",
      "Transfer-Encoding: chunked", "Transfer-Encoding: gzip", "Content-Length: 12", "Content-Length: 1 2",
      "Content-Length: +1", "Content-Length: 99999999999999999999", "Content-Length:\t7", "X-Empty:",
      "X-Spaces:   ", "content-length: 0", "Date: Tue, 01 Dec 2026 22:00:00 GMT", " folded",
  };
  const std::string bytes =
      std::string(" \t:0123456789/.HTTP\r\n,;\"aAzZ\x7f\x80\xff") + std::string(1, '\0');
  const std::string body = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::mt19937 rng(2026);
  std::size_t ok_heads = 0, refused = 0, reusable = 0, mutants = 0;
  auto compare = [&](const std::string& head) {
    for (bool head_request : {false, true}) {
      // What follows the head: often exactly a short body, so that
      // reusability (keep-alive and no extra bytes) is compared too.
      const std::string_view rest = std::string_view(body).substr(0, rng() % 2 ? rng() % 8 : rng() % body.size());
      const std::size_t cut = rng() % (rest.size() + 1);
      const std::uint32_t max_fields = 2 + rng() % 4;
      proxy::response_reader plain(head_request);
      proxy::response_reader always(head_request, proxy::response_reader::llhttp_always_t{});
      const std::string a = read_response(plain, head, rest, cut, max_fields);
      const std::string b = read_response(always, head, rest, cut, max_fields);
      INFO("head: " << head << " HEAD request: " << head_request << " cut " << cut << " max " << max_fields);
      REQUIRE(a == b);
      (a.rfind("head=0", 0) == 0 ? ok_heads : refused) += 1;
      reusable += a.find("reusable=1") != std::string::npos;
    }
  };
  for (const auto& seed : seeds) compare(seed);
  for (const auto& seed : seeds) {
    for (int round = 0; round < 2000; ++round) {
      // Edits stay before the blank line: the head is what find_head_end cut.
      compare(test::mutate_head(seed, rng, bytes, lines, 4));
      ++mutants;
    }
  }
  CHECK(mutants == seeds.size() * 2000);
  CHECK(ok_heads > 5000);
  CHECK(refused > 5000);
  CHECK(reusable > 200);
}
