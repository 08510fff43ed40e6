#include "gateway/http/request_parser.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "tests/support/mutate.hpp"

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
      {"/a//../b", "/b", ""},  // slashes merged first, as nginx does
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

TEST_CASE("parser decodes escapes of unreserved characters and merges repeated slashes, before anything routes",
          "[unit][http][parser]") {
  const std::pair<const char*, const char*> cases[] = {
      {"/%61pi/users", "/api/users"},
      {"//api/users", "/api/users"},
      {"/api//users///", "/api/users/"},
      {"/x/%2e%2e%2e/y", "/x/.../y"},
      {"/x/%2ex/y", "/x/.x/y"},
      {"/a/%7Euser/%41%2F", "/a/~user/A%2F"},
      {"/%41%42%5a", "/ABZ"},
      {"//a/../b", "/b"},
      {"/a/%2F%2e%2e/b", "/a/%2F../b"},
      {"/a%2f//b?x=//%61", "/a%2F/b"},
      // Kept escapes get upper-case hex digits (RFC 3986 section 6.2.2.1),
      // so "%2f" and "%2F" route alike.
      {"/a%2fb%3a%c3%a9", "/a%2Fb%3A%C3%A9"},
      {"/%2f../x", "/%2F../x"},
      {"/a%2Fb%2f", "/a%2Fb%2F"},
  };
  for (const auto& [target, path] : cases) {
    INFO(target);
    parsed p;
    const std::string raw = get(target);
    parse(p, raw);
    REQUIRE(p.head.what == http::head_result::kind::complete);
    CHECK(p.req.path == path);
    const std::string_view t = target;
    const auto q = t.find('?');
    CHECK(p.req.target == std::string(path) + std::string(q == std::string_view::npos ? "" : t.substr(q)));
  }
  CHECK(http::path_needs_normalizing("/%61"));
  CHECK(http::path_needs_normalizing("/a//b"));
  CHECK_FALSE(http::path_needs_normalizing("/a%20b%2F%25%zz%4"));
  CHECK(http::path_needs_normalizing("/a%2fb"));
  CHECK(http::path_needs_normalizing("/a%C3%a9"));
}

TEST_CASE("parser leaves paths with nothing to normalize where they are, uncopied", "[unit][http][parser]") {
  for (const char* target : {"/api/users/42", "/static/app.min.js", "/a.b/..c/.../c..", "/a%20b", "/a%2F..%2Fb",
                             "/%2F../x", "/a/%2/b", "/a/.%2", "/api/x?y=/../..", "/"}) {
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

TEST_CASE("parser reads close and keep-alive from every Connection field", "[unit][http][parser]") {
  struct want {
    const char* head;
    bool keep_alive;
  };
  for (const want& w : {
           want{"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\nConnection: foo\r\n\r\n", false},
           want{"GET /x HTTP/1.1\r\nHost: t\r\nConnection: foo\r\nConnection: close\r\n\r\n", false},
           want{"GET /x HTTP/1.1\r\nHost: t\r\nConnection: foo\r\nConnection: bar\r\n\r\n", true},
           want{"GET /x HTTP/1.0\r\nConnection: keep-alive\r\nConnection: foo\r\n\r\n", true},
           want{"GET /x HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n", true},
           want{"GET /x HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
           want{"GET /x HTTP/1.0\r\nConnection: foo\r\n\r\n", false},
       }) {
    INFO(w.head);
    parsed p;
    parse(p, w.head);
    REQUIRE(p.head.what == http::head_result::kind::complete);
    CHECK(p.req.keep_alive == w.keep_alive);
  }
}

TEST_CASE("parser ignores Expect: 100-continue in an HTTP/1.0 request", "[unit][http][parser]") {
  parsed old;
  parse(old, "POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  REQUIRE(old.head.what == http::head_result::kind::complete);
  CHECK_FALSE(old.head.expect_continue);
  parsed now;
  parse(now, "POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  REQUIRE(now.head.what == http::head_result::kind::complete);
  CHECK(now.head.expect_continue);
  // Other expectations are still refused, in either version.
  parsed odd;
  parse(odd, "POST /x HTTP/1.0\r\nExpect: 200-ok\r\n\r\n");
  REQUIRE(odd.head.what == http::head_result::kind::error);
  CHECK(odd.head.status == 417);
}

TEST_CASE("parser ends an absolute-form authority at the first '/' or '?'", "[unit][http][parser]") {
  struct want {
    const char* target;
    const char* path;
    const char* query;
  };
  for (const want& w : {
           want{"http://a?admin=1&k=z/api/foo", "/", "admin=1&k=z/api/foo"},
           want{"http://a/api/foo?x=1", "/api/foo", "x=1"},
           want{"http://a", "/", ""},
           want{"http://a?", "/", ""},
           want{"https://a:8443/p/?q/r", "/p/", "q/r"},
       }) {
    INFO(w.target);
    parsed p;
    const std::string raw_head = std::string("GET ") + w.target + " HTTP/1.1\r\nHost: a\r\n\r\n";
    parse(p, raw_head);
    REQUIRE(p.head.what == http::head_result::kind::complete);
    CHECK(p.req.path == w.path);
    CHECK(p.req.query == w.query);
  }
}

TEST_CASE("parser takes an absolute-form target's authority as the host, and refuses other schemes and userinfo",
          "[unit][http][parser]") {
  // RFC 9112 section 3.2.2: the Host field is ignored; the one host everyone sees is the target's.
  parsed p;
  parse(p, "GET http://b.example:8080/api/x HTTP/1.1\r\nHost: a\r\nX-After: y\r\n\r\n");
  REQUIRE(p.head.what == http::head_result::kind::complete);
  CHECK(p.req.headers.count("host") == 1);
  CHECK(p.req.headers.value_of("host") == "b.example:8080");
  CHECK(p.req.headers.begin()->name == "Host");  // in its place
  CHECK(p.req.path == "/api/x");
  parsed old;
  parse(old, "GET HTTP://b/x HTTP/1.0\r\n\r\n");
  REQUIRE(old.head.what == http::head_result::kind::complete);
  CHECK(old.req.headers.value_of("host") == "b");
  for (const char* target : {"foo://b/x", "http://u@b/x", "http://u:p@b/x", "http:///x", "http://b\"/x"}) {
    INFO(target);
    parsed bad;
    parse(bad, std::string("GET ") + target + " HTTP/1.1\r\nHost: b\r\n\r\n");
    REQUIRE(bad.head.what == http::head_result::kind::error);
    CHECK(bad.head.status == 400);
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

namespace {

// Everything parse_head reports, as text, so two parsers' answers compare
// in one CHECK and print readably when they differ.
std::string outcome(http::request_parser& parser, std::string_view raw, const http::head_limits& limits = {},
                    std::size_t* scanned = nullptr) {
  parsed p;
  p.req = http::request{};
  p.req.headers = http::header_list(p.mem);
  p.head = parser.parse_head(raw, p.req, limits, scanned);
  std::string s = std::to_string(static_cast<int>(p.head.what)) + " " + std::to_string(p.head.status) + " " +
                  std::string(p.head.message);
  if (p.head.what != http::head_result::kind::complete) return s;
  s += " size=" + std::to_string(p.head.head_size) + " chunked=" + std::to_string(p.head.chunked) +
       " cl=" + std::to_string(p.head.content_length) + " expect=" + std::to_string(p.head.expect_continue) +
       " method=" + std::string(p.req.method) + "/" + std::to_string(p.req.method_id) +
       " target=" + std::string(p.req.target) + " minor=" + std::to_string(p.req.version_minor) +
       " upgrade=" + std::to_string(p.req.upgrade) + " keep_alive=" + std::to_string(p.req.keep_alive) +
       " was_chunked=" + std::to_string(p.req.was_chunked);
  for (const auto& f : p.req.headers) s += " [" + std::string(f.name) + "=" + std::string(f.value) + "]";
  return s;
}

}  // namespace

// The parser skips llhttp on heads of the common kind (a known method,
// origin-form target, no Transfer-Encoding or Upgrade). On every head here,
// the seeds and some 60,000 mutations of them, it must answer exactly as a
// parser that runs llhttp on every head does.
TEST_CASE("parser answers as with llhttp on every head, for common heads it parses alone",
          "[unit][http][parser]") {
  const std::vector<std::string> seeds = {
      "GET /api/items?page=1 HTTP/1.1\r\nHost: perf\r\nX-API-Key: loadtest-key\r\n\r\n",
      "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody",
      "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4 \t\r\n\r\n",
      "PUT /x?a=1?b=2&c=%20 HTTP/1.1\r\nHost: a\r\nContent-Length:    0\r\nConnection: close\r\n\r\n",
      "DELETE /a/b/../c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "HEAD / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, upgrade\r\n\r\n",
      "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n",
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
      "PATCH /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
      "GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n",
      "PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n",
      "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
      "GET /!$&'()*+,;=:@-._~%41 HTTP/1.2\r\nHost: a\r\nX: \x80\xff obs-text\r\nProxy-Connection: close\r\n\r\n",
  };
  const std::vector<std::string> lines = {
      "Upgrade: websocket", "Connection: upgrade", "Connection: close", "Connection: ,,keep-alive ,",
      "Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked", "Content-Length: 12",
      "Content-Length: 1 2", "Content-Length: +1", "Content-Length: 99999999999999999999",
      "Content-Length:\t7\t", "Proxy-Connection: upgrade", "Host: b", "Expect: 100-continue", "X-Empty:",
      "Keep-Alive: timeout=5", "content-length: 0", "UPGRADE: x", "Transfer_Encoding: chunked",
  };
  const std::string bytes = std::string(" \t:?#/%\r\n,;=\"{}|<>\\^`~!*aAzZ09.-_@[]\x7f\x80\xff") + std::string(1, '\0');
  std::mt19937 rng(2026);
  http::request_parser fast;
  http::request_parser always(http::request_parser::llhttp_always_t{});
  std::size_t complete = 0, errors = 0, mutants = 0;
  auto compare = [&](const std::string& raw) {
    const std::string a = outcome(fast, raw);
    const std::string b = outcome(always, raw);
    INFO("head: " << raw);
    REQUIRE(a == b);
    (a.rfind("1 ", 0) == 0 ? complete : errors) += 1;
  };
  for (const auto& seed : seeds) compare(seed);
  for (const auto& seed : seeds) {
    for (int round = 0; round < 4000; ++round) {
      compare(test::mutate_head(seed, rng, bytes, lines));
      ++mutants;
    }
  }
  CHECK(mutants == seeds.size() * 4000);
  // Both kinds of answer occur often, so both paths are exercised.
  CHECK(complete > 10000);
  CHECK(errors > 10000);
}

// The connection passes parse_head the search position of its last call
// while a head arrives in pieces. Fed every head here (seeds full of line
// ends, and mutations of them) one piece at a time, a parser that resumes
// must answer each prefix exactly as one given that prefix whole, with the
// default limits and with a head limit the heads cross.
TEST_CASE("parser fed a head piece by piece answers each prefix as when given it whole", "[unit][http][parser]") {
  const std::vector<std::string> seeds = {
      "GET /a HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n",
      "\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n",
      "\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n",
      "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab",
      "GET / HTTP/1.1\r\nHost: a\r\nA: b\r\n\r\r\n\r\n",
      "GET /" + std::string(60, 'p') + " HTTP/1.1\r\nHost: a\r\nA: " + std::string(40, 'v') + "\r\nB: c\r\n\r\n",
  };
  const std::vector<std::string> lines = {"", "A: b", "Connection: close", "X:", "Content-Length: 1"};
  const std::string bytes = "\r\n\r\n \t:aZ0/";
  std::mt19937 rng(1202);
  http::request_parser resuming;
  http::request_parser whole;
  std::size_t heads = 0, prefixes = 0, complete = 0, resumed = 0;
  for (const http::head_limits limits : {http::head_limits{}, http::head_limits{48, 100, 8 * 1024}}) {
    for (const auto& seed : seeds) {
      for (int round = 0; round <= 600; ++round) {
        const std::string raw = round == 0 ? seed : test::mutate_head(seed, rng, bytes, lines);
        ++heads;
        std::size_t scanned = 0;
        std::size_t k = 0;
        while (k < raw.size()) {
          k = std::min(raw.size(), k + 1 + (rng() % 4 == 0 ? rng() % 8 : 0));
          const std::string prefix = raw.substr(0, k);
          const std::string a = outcome(resuming, prefix, limits, &scanned);
          const std::string b = outcome(whole, prefix, limits);
          INFO("head: " << raw << " prefix: " << k);
          REQUIRE(a == b);
          ++prefixes;
          if (a.rfind("0 ", 0) != 0) {
            complete += a.rfind("1 ", 0) == 0;
            break;
          }
          REQUIRE(scanned <= prefix.size());
          resumed += scanned > 0;
        }
      }
    }
  }
  CHECK(heads == 2 * seeds.size() * 601);
  // Most heads end in an error within a few pieces (a mutation or the
  // small limit); enough run long, resume and complete.
  CHECK(prefixes > 15 * heads);
  CHECK(resumed > 10 * heads);
  CHECK(complete > heads / 8);
}

TEST_CASE("parser ignores Upgrade in an HTTP/1.0 request", "[unit][http][parser]") {
  http::request_parser parser;
  const std::string ws = "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  CHECK(outcome(parser, "GET /chat HTTP/1.1\r\nHost: a\r\n" + ws).find(" upgrade=1 ") != std::string::npos);
  CHECK(outcome(parser, "GET /chat HTTP/1.0\r\nHost: a\r\n" + ws).find(" upgrade=0 ") != std::string::npos);
}
