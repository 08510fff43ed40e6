// The proxy's pieces on their own, without sockets: backend URL parsing, the
// response reader's in-place decoding and reuse decision, hop-by-hop fields.
#include <catch2/catch.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "gateway/http/syntax.hpp"
#include "gateway/core/arena.hpp"
#include "gateway/http/header_list.hpp"
#include "gateway/proxy/backend_address.hpp"
#include "gateway/proxy/request_writer.hpp"
#include "gateway/proxy/response_reader.hpp"

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
  for (const char* bad : {"127.0.0.1:80", "ftp://127.0.0.1:21", "https://", "https://127.0.0.1:0", "http://", "http://127.0.0.1:0",
                          "http://127.0.0.1:70000", "http://127.0.0.1:80/path", "http://127.0.0.1:x",
                          "http://[::1", "http://user@127.0.0.1:80", "http://127.0.0.1:", "http://[name]:80",
                          "http://bad!name:80", "http://sp ace:80"}) {
    INFO(bad);
    CHECK_THROWS_AS(proxy::parse_backend_url(bad), std::invalid_argument);
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

TEST_CASE("is_hop_by_hop knows the fixed list and the fields Connection names", "[unit][proxy]") {
  core::arena mem;
  http::header_list h(mem);
  h.add("Connection", "close, X-Foo");
  h.add("connection", " x-bar ");
  for (const char* n : {"Connection", "keep-alive", "Proxy-Connection", "te", "Trailer", "TRANSFER-ENCODING",
                        "Upgrade", "x-foo", "X-Bar"})
    CHECK(http::is_hop_by_hop(n, h));
  for (const char* n : {"Host", "Content-Length", "X-Foobar", "Trailers", "Close2"}) CHECK_FALSE(http::is_hop_by_hop(n, h));
}
