#include "gateway/http/request_parser.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace gateway;

namespace {

struct parsed {
  core::arena mem;
  http::request req;
  http::head_result head;
};

// Parses `raw` as a connection does, into a fresh request and arena.
void parse(parsed& p, std::string_view raw, const http::head_limits& limits = {}) {
  http::request_parser parser;
  p.req = http::request{};
  p.req.headers = http::header_list(p.mem);
  p.head = parser.parse_head(raw, p.req, limits);
}

std::string get(std::string_view target) { return "GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n\r\n"; }

bool inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

TEST_CASE("parser resolves dot-segments, literal or percent-encoded, before anything routes",
          "[unit][http][parser]") {
  struct c {
    const char* target;
    const char* path;
    const char* query;
  };
  const c cases[] = {
      {"/api/../logs", "/logs", ""},
      {"/api/./x", "/api/x", ""},
      {"/a/b/../c", "/a/c", ""},
      {"/a/b/..", "/a/", ""},
      {"/a/b/.", "/a/b/", ""},
      {"/a/..", "/", ""},
      {"/.", "/", ""},
      {"/./a", "/a", ""},
      {"/api/%2e%2e/logs", "/logs", ""},
      {"/api/%2E%2E/logs", "/logs", ""},
      {"/api/.%2e/logs", "/logs", ""},
      {"/api/%2E./logs", "/logs", ""},
      {"/api/%2e/x", "/api/x", ""},
      {"/open/../api/x?api_key=k&b=.", "/api/x", "api_key=k&b=."},
      {"/a//../b", "/a/b", ""},
      {"/a/b/../../c/./d?", "/c/d", ""},
  };
  for (const auto& k : cases) {
    INFO(k.target);
    parsed p;
    const std::string raw = get(k.target);
    parse(p, raw);
    REQUIRE(p.head.what == http::head_result::kind::complete);
    CHECK(p.req.path == k.path);
    CHECK(p.req.query == k.query);
    // The target becomes origin-form with the resolved path, the query as sent.
    const std::string_view t = k.target;
    const auto q = t.find('?');
    CHECK(p.req.target == std::string(k.path) + std::string(q == std::string_view::npos ? "" : t.substr(q)));
  }
  // Absolute-form too.
  parsed p;
  parse(p, "GET http://t/api/x/../../logs?z HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(p.head.what == http::head_result::kind::complete);
  CHECK(p.req.path == "/logs");
  CHECK(p.req.target == "/logs?z");
}

TEST_CASE("parser refuses a path that would climb above the root with 400", "[unit][http][parser]") {
  for (const char* target : {"/..", "/../x", "/a/../..", "/a/../../b", "/%2e%2e/", "/.%2E", "/a/./../../b?x=1"}) {
    INFO(target);
    parsed p;
    const std::string raw = get(target);
    parse(p, raw);
    REQUIRE(p.head.what == http::head_result::kind::error);
    CHECK(p.head.status == 400);
  }
}

TEST_CASE("parser leaves paths without dot-segments where they are, uncopied", "[unit][http][parser]") {
  for (const char* target : {"/api/users/42", "/static/app.min.js", "/a.b/..c/.../c..", "/x/%2e%2e%2e/y", "/x/%2ex/y",
                             "/a%2F..%2Fb", "/%2f../x", "/a/%2/b", "/a/.%2", "/api/x?y=/../..", "/"}) {
    INFO(target);
    parsed p;
    const std::string raw = get(target);
    const std::size_t before = p.mem.bytes_used();
    parse(p, raw);
    REQUIRE(p.head.what == http::head_result::kind::complete);
    const std::string_view t = target;
    CHECK(p.req.path == t.substr(0, t.find('?')));
    CHECK(inside(p.req.path, raw));
    CHECK(inside(p.req.target, raw));
    // Only the header table came from the arena: the same as for any path.
    parsed plain;
    parse(plain, get("/plain"));
    CHECK(p.mem.bytes_used() - before == plain.mem.bytes_used());
  }
  CHECK_FALSE(http::has_dot_segment("/a.b/c."));
  CHECK(http::has_dot_segment("/a/./b"));
  CHECK(http::has_dot_segment("/a/%2E%2e"));
}

TEST_CASE("parser answers 414 for a request-target over the limit, 431 for header fields", "[unit][http][parser]") {
  http::head_limits limits;
  limits.max_head = 16 * 1024;
  limits.max_target = 1024;
  {
    parsed p;
    const std::string raw = get("/" + std::string(1024, 'a'));  // 1,025 bytes
    parse(p, raw, limits);
    REQUIRE(p.head.what == http::head_result::kind::error);
    CHECK(p.head.status == 414);
  }
  {
    parsed p;
    parse(p, get("/" + std::string(1023, 'a')), limits);
    CHECK(p.head.what == http::head_result::kind::complete);
  }
  {
    // Refused as soon as the target alone is over the limit, before its line ends.
    parsed p;
    parse(p, "GET /" + std::string(2000, 'a'), limits);
    REQUIRE(p.head.what == http::head_result::kind::error);
    CHECK(p.head.status == 414);
  }
  {
    // A request line that does not end within the head limit.
    http::head_limits small;
    small.max_head = 512;
    parsed p;
    parse(p, "GET /" + std::string(600, 'a'), small);
    REQUIRE(p.head.what == http::head_result::kind::error);
    CHECK(p.head.status == 414);
  }
  {
    parsed p;
    std::string raw = "GET /x HTTP/1.1\r\nHost: t\r\n";
    for (int i = 0; i < 200; ++i) raw += "X-Field-" + std::to_string(i) + ": " + std::string(80, 'v') + "\r\n";
    parse(p, raw, limits);
    REQUIRE(p.head.what == http::head_result::kind::error);
    CHECK(p.head.status == 431);
  }
}

TEST_CASE("parser refuses a request line that is not METHOD SP target SP version as soon as it ends",
          "[unit][http][parser]") {
  for (const char* line : {"GET /\r\n", "GET /\r\nHost: t\r\n", "GET\r\n", "GET  / HTTP/1.1\r\n", "GET / HTTP/1.1 x\r\n",
                           "GET / HTTQ/1.1\r\n"}) {
    INFO(line);
    parsed p;
    parse(p, line);  // the head is not complete: no empty line yet
    REQUIRE(p.head.what == http::head_result::kind::error);
    CHECK(p.head.status == 400);
  }
  parsed p;
  parse(p, "GET / HTTP/2.0\r\n");
  CHECK(p.head.status == 505);
  // A good request line just waits for the rest.
  parsed ok;
  parse(ok, "GET / HTTP/1.1\r\nHost: t\r\n");
  CHECK(ok.head.what == http::head_result::kind::incomplete);
  parsed partial;
  parse(partial, "GET /ap");
  CHECK(partial.head.what == http::head_result::kind::incomplete);
}

TEST_CASE("parser serves HTTP/1.x above 1.1 as 1.1", "[unit][http][parser]") {
  for (const char* v : {"HTTP/1.2", "HTTP/1.9"}) {
    INFO(v);
    parsed p;
    const std::string raw_head = std::string("GET /x ") + v + "\r\nHost: t\r\n\r\n";
    parse(p, raw_head);
    REQUIRE(p.head.what == http::head_result::kind::complete);
    CHECK(p.req.version_minor == 1);
    CHECK(p.req.keep_alive);
  }
}

TEST_CASE("parser takes a Content-Length with surrounding whitespace as its number", "[unit][http][parser]") {
  for (const char* value : {" 5", "5 ", "\t5", "5\t", " \t5\t ", "  5  "}) {
    INFO("[" << value << "]");
    parsed p;
    const std::string raw_head = std::string("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length:") + value + "\r\nX-After: y\r\n\r\nhello";
    parse(p, raw_head);
    REQUIRE(p.head.what == http::head_result::kind::complete);
    CHECK(p.head.content_length == 5);
    CHECK(p.req.headers.value_of("x-after") == "y");
  }
}

TEST_CASE("parser refuses a Transfer-Encoding not ending in chunked with 400, others it cannot decode with 501",
          "[unit][http][parser]") {
  struct c {
    const char* te;
    int status;
  };
  for (c k : {c{"gzip", 400}, c{"identity", 400}, c{"chunked, gzip", 400}, c{"xchunked", 400}, c{"chunked,", 400},
              c{"gzip, chunked", 501}, c{"chunked;q=1", 501}, c{"chunked, chunked", 501}}) {
    INFO(k.te);
    parsed p;
    const std::string raw_head = std::string("POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: ") + k.te + "\r\n\r\n";
    parse(p, raw_head);
    REQUIRE(p.head.what == http::head_result::kind::error);
    CHECK(p.head.status == k.status);
  }
  parsed ok;
  parse(ok, "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n");
  CHECK(ok.head.chunked);
}

TEST_CASE("parser refuses an empty Host", "[unit][http][parser]") {
  for (const char* raw : {"GET / HTTP/1.1\r\nHost:\r\n\r\n", "GET / HTTP/1.1\r\nHost: \t \r\n\r\n",
                          "GET / HTTP/1.0\r\nHost:\r\n\r\n"}) {
    parsed p;
    parse(p, raw);
    REQUIRE(p.head.what == http::head_result::kind::error);
    CHECK(p.head.status == 400);
  }
}
