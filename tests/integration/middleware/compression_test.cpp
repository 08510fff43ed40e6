// Response compression through the whole gateway in front of a recording
// backend: which proxied responses are gzipped, and what the headers that
// describe the representation (Vary, ETag, Accept-Ranges) say afterwards.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <zlib.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/gunzip.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using test::gunzip;

namespace {

// About 25 KiB of JSON lines: compressible, and far above the minimum size.
std::string json_text() {
  std::string text;
  for (int i = 0; i < 500; ++i) text += "{\"n\":" + std::to_string(i) + ",\"text\":\"compressible\"}\n";
  return text;
}

// Every value of the field `name`, in order.
std::vector<std::string> values_of(const test::http_response& r, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [n, v] : r.headers)
    if (http::iequals(n, name)) out.push_back(v);
  return out;
}

// The gateway with --compress-responses on, proxying /api/ to a backend
// that answers `answer(request)` (whole response bytes).
class compressing_gateway {
 public:
  explicit compressing_gateway(std::function<std::string(const test::recorded_request&)> answer)
      : srv_(config_for(backend_)) {
    backend_.set_script([answer = std::move(answer)](const test::recorded_request& r) { return test::reply{answer(r)}; });
  }

  test::http_response get(std::string_view path, std::string_view extra_headers) {
    auto r = test::http_request(srv_.port(),
                                test::make_request("GET", path, {}, "X-API-Key: k\r\n" + std::string(extra_headers)));
    REQUIRE(r);
    return *r;
  }

  test::recording_backend& backend() { return backend_; }

 private:
  static core::config config_for(const test::recording_backend& backend) {
    auto cfg = test::test_config();
    cfg.backend = backend.url();
    cfg.api_keys = {"k"};
    cfg.compress_responses = true;
    return cfg;
  }

  test::recording_backend backend_;
  test::running_server srv_;
};

}  // namespace

TEST_CASE("compression: Accept-Encoding joins a Vary the backend already sent", "[integration][middleware]") {
  const std::string text = json_text();
  compressing_gateway gw([&](const test::recorded_request& r) {
    std::string extra = "Content-Type: application/json\r\n";
    if (r.target == "/origin") extra += "Vary: Origin\r\n";
    else if (r.target == "/two") extra += "Vary: Origin\r\nVary: Cookie\r\n";
    else if (r.target == "/already") extra += "Vary: Origin, accept-ENCODING\r\n";
    else if (r.target == "/star") extra += "Vary: *\r\n";
    return test::ok_response(text, extra);
  });

  auto origin = gw.get("/api/origin", "Accept-Encoding: gzip\r\n");
  CHECK(origin.header("Content-Encoding") == "gzip");
  CHECK(values_of(origin, "Vary") == std::vector<std::string>{"Origin, Accept-Encoding"});
  CHECK(gunzip(origin.body) == text);

  auto two = gw.get("/api/two", "Accept-Encoding: gzip\r\n");
  CHECK(two.header("Content-Encoding") == "gzip");
  CHECK(values_of(two, "Vary") == std::vector<std::string>{"Origin", "Cookie, Accept-Encoding"});

  auto already = gw.get("/api/already", "Accept-Encoding: gzip\r\n");
  CHECK(already.header("Content-Encoding") == "gzip");
  CHECK(values_of(already, "Vary") == std::vector<std::string>{"Origin, accept-ENCODING"});

  auto star = gw.get("/api/star", "Accept-Encoding: gzip\r\n");
  CHECK(star.header("Content-Encoding") == "gzip");
  CHECK(values_of(star, "Vary") == std::vector<std::string>{"*"});

  auto none = gw.get("/api/none", "Accept-Encoding: gzip\r\n");
  CHECK(values_of(none, "Vary") == std::vector<std::string>{"Accept-Encoding"});
}

TEST_CASE("compression: a gzipped response gets a weak ETag and no Accept-Ranges, no-transform is not compressed",
          "[integration][middleware]") {
  const std::string text = json_text();
  compressing_gateway gw([&](const test::recorded_request& r) {
    std::string extra = "Content-Type: application/json\r\nAccept-Ranges: bytes\r\n";
    if (r.target == "/strong") extra += "ETag: \"strong1\"\r\n";
    else if (r.target == "/weak") extra += "ETag: W/\"weak1\"\r\n";
    else if (r.target == "/bogus") extra += "ETag: not-a-tag\r\n";
    else if (r.target == "/no-transform") extra += "ETag: \"strong1\"\r\nCache-Control: public, NO-TRANSFORM\r\n";
    else if (r.target == "/two-cc") extra += "Cache-Control: max-age=60\r\nCache-Control: no-transform\r\n";
    else if (r.target == "/max-age") extra += "Cache-Control: max-age=60, must-revalidate\r\n";
    return test::ok_response(text, extra);
  });

  auto strong = gw.get("/api/strong", "Accept-Encoding: gzip\r\n");
  CHECK(strong.header("Content-Encoding") == "gzip");
  CHECK(values_of(strong, "ETag") == std::vector<std::string>{"W/\"strong1\""});
  CHECK(strong.count("Accept-Ranges") == 0);
  CHECK(gunzip(strong.body) == text);

  auto weak = gw.get("/api/weak", "Accept-Encoding: gzip\r\n");
  CHECK(weak.header("Content-Encoding") == "gzip");
  CHECK(values_of(weak, "ETag") == std::vector<std::string>{"W/\"weak1\""});

  auto bogus = gw.get("/api/bogus", "Accept-Encoding: gzip\r\n");
  CHECK(bogus.header("Content-Encoding") == "gzip");
  CHECK(bogus.count("ETag") == 0);

  auto max_age = gw.get("/api/max-age", "Accept-Encoding: gzip\r\n");
  CHECK(max_age.header("Content-Encoding") == "gzip");

  // Not compressed: the backend's representation goes out untouched.
  for (const char* path : {"/api/no-transform", "/api/two-cc"}) {
    INFO(path);
    auto r = gw.get(path, "Accept-Encoding: gzip\r\n");
    CHECK(r.count("Content-Encoding") == 0);
    CHECK(r.header("Accept-Ranges") == "bytes");
    CHECK(r.count("Vary") == 0);
    CHECK(r.body == text);
  }
  CHECK(gw.get("/api/no-transform", "Accept-Encoding: gzip\r\n").header("ETag") == "\"strong1\"");

  // Without Accept-Encoding nothing changes either.
  auto plain = gw.get("/api/strong", "");
  CHECK(plain.count("Content-Encoding") == 0);
  CHECK(plain.header("ETag") == "\"strong1\"");
  CHECK(plain.header("Accept-Ranges") == "bytes");
  CHECK(plain.body == text);
}

TEST_CASE("compression: a proxied body shorter than 256 bytes by its Content-Length is not compressed",
          "[integration][middleware]") {
  const std::string text = json_text();
  compressing_gateway gw([&](const test::recorded_request& r) {
    if (r.target == "/20") return test::ok_response("twenty bytes of text", "Content-Type: text/plain\r\n");
    if (r.target == "/255") return test::ok_response(text.substr(0, 255), "Content-Type: application/json\r\n");
    if (r.target == "/256") return test::ok_response(text.substr(0, 256), "Content-Type: application/json\r\n");
    return test::ok_response(text, "Content-Type: application/json\r\n");
  });

  for (const char* path : {"/api/20", "/api/255"}) {
    INFO(path);
    auto r = gw.get(path, "Accept-Encoding: gzip\r\n");
    CHECK(r.status == 200);
    CHECK(r.count("Content-Encoding") == 0);
    CHECK(r.count("Transfer-Encoding") == 0);
    CHECK(r.count("Vary") == 0);
    CHECK(r.header("Content-Length") == std::to_string(r.body.size()));
  }
  CHECK(gw.get("/api/20", "Accept-Encoding: gzip\r\n").body == "twenty bytes of text");

  // From the minimum on, streamed bodies are compressed (with the length as
  // the encoder's size hint, the output is the same gzip stream).
  for (const char* path : {"/api/256", "/api/long"}) {
    INFO(path);
    auto r = gw.get(path, "Accept-Encoding: gzip\r\n");
    CHECK(r.header("Content-Encoding") == "gzip");
    CHECK(r.count("Content-Length") == 0);
    CHECK(gunzip(r.body) == (std::string_view(path) == "/api/256" ? text.substr(0, 256) : text));
  }
}

TEST_CASE("compression: every Accept-Encoding line counts, and a q=0 for gzip refuses it", "[integration][middleware]") {
  const std::string text = json_text();
  compressing_gateway gw([&](const test::recorded_request&) {
    return test::ok_response(text, "Content-Type: application/json\r\n");
  });

  for (const char* lines : {"Accept-Encoding: br\r\nAccept-Encoding: gzip\r\n",
                            "Accept-Encoding: br\r\naccept-encoding: deflate, *;q=0.5\r\n",
                            "Accept-Encoding: gzip;q=0.2\r\nAccept-Encoding: gzip;q=1\r\n"}) {
    INFO(lines);
    auto r = gw.get("/api/x", lines);
    CHECK(r.header("Content-Encoding") == "gzip");
    CHECK(gunzip(r.body) == text);
  }
  for (const char* lines : {"Accept-Encoding: gzip\r\nAccept-Encoding: gzip;q=0\r\n",
                            "Accept-Encoding: gzip;q=0\r\nAccept-Encoding: gzip\r\n",
                            "Accept-Encoding: gzip, gzip;q=0\r\n",
                            "Accept-Encoding: *\r\nAccept-Encoding: gzip;q=0\r\n",
                            "Accept-Encoding: br\r\nAccept-Encoding: deflate\r\n"}) {
    INFO(lines);
    auto r = gw.get("/api/x", lines);
    CHECK(r.count("Content-Encoding") == 0);
    CHECK(r.body == text);
  }
}

TEST_CASE("compression: a request body is decoded only after routing, the rate limit and auth let it through",
          "[integration][middleware]") {
  test::recording_backend backend;
  auto cfg = test::test_config();
  cfg.backend = backend.url();
  cfg.api_keys = {"k"};
  cfg.rate_limit = 3;
  test::running_server srv(cfg);
  const std::string corrupt = "not a gzip stream";
  auto post = [&](std::string_view path, std::string_view extra) {
    auto r = test::http_request(srv.port(), test::make_request("POST", path, corrupt,
                                                               "Content-Encoding: gzip\r\n" + std::string(extra)));
    REQUIRE(r);
    return r->status;
  };
  // No route: the router's 404, the body never decoded.
  CHECK(post("/nowhere", "X-API-Key: k\r\n") == 404);
  // Refused by auth (counted by the rate limit: 1 of 3).
  CHECK(post("/api/x", "") == 401);
  // Let through: now the body is decoded, and found corrupt (2 and 3 of 3).
  CHECK(post("/api/x", "X-API-Key: k\r\n") == 400);
  CHECK(post("/api/x", "X-API-Key: k\r\n") == 400);
  // Over the rate limit: 429 before any decoding.
  CHECK(post("/api/x", "X-API-Key: k\r\n") == 429);
  CHECK(backend.request_count() == 0);
}

TEST_CASE("compression: decoded request bytes count against --body-budget and are given back",
          "[integration][middleware]") {
  test::recording_backend backend;
  auto cfg = test::test_config();
  cfg.backend = backend.url();
  cfg.api_keys = {"k"};
  cfg.max_body = 10u << 20;
  cfg.body_budget = 1u << 20;
  test::running_server srv(cfg);
  auto post = [&](const std::string& plain) {
    const std::string gz = test::gzip_bytes(plain, 9);
    REQUIRE(gz.size() < (64u << 10));  // the raw body fits the budget easily
    auto r = test::http_request(srv.port(), test::make_request("POST", "/api/upload", gz,
                                                               "X-API-Key: k\r\nContent-Encoding: gzip\r\n"));
    REQUIRE(r);
    return *r;
  };
  // 4 MiB decoded: within --max-body, over the 1 MiB budget.
  auto big = post(std::string(4u << 20, 'a'));
  CHECK(big.status == 503);
  CHECK(big.header("Retry-After") == "1");
  CHECK(backend.request_count() == 0);
  // 256 KiB decoded fits (the output grows by doubling, so it takes at most
  // twice that): forwarded whole.
  const std::string small(256u << 10, 'b');
  auto ok = post(small);
  CHECK(ok.status == 200);
  auto got = backend.requests();
  REQUIRE(got.size() == 1);
  CHECK(got[0].body == small);
  // Everything taken was given back, after a refusal and after a
  // forwarded request alike: nothing stays counted.
  CHECK(test::gauge(srv.port(), "body_bytes_buffered") == 0);
  CHECK(post(std::string(4u << 20, 'a')).status == 503);
  CHECK(test::gauge(srv.port(), "body_bytes_buffered") == 0);
  CHECK(post(small).status == 200);
  CHECK(test::gauge(srv.port(), "body_bytes_buffered") == 0);
}

TEST_CASE("compression: a decoded request body stays counted against --body-budget until its request is over",
          "[integration][middleware]") {
  // The backend's response streams to a client that reads only its head:
  // the request is past its route's layers, but its arena (and the decoded
  // body in it) lives until the response is written or the client leaves.
  test::recording_backend backend;
  backend.set_script([](const test::recorded_request&) {
    test::reply r;
    r.bytes = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 67108864\r\n\r\n";
    r.generated_body = 64u << 20;
    return r;
  });
  auto cfg = test::test_config();
  cfg.backend = backend.url();
  cfg.api_keys = {"k"};
  test::running_server srv(cfg);
  const std::string plain(256u << 10, 'a');
  const std::string gz = test::gzip_bytes(plain, 9);
  REQUIRE(gz.size() <= 2048);  // the raw body is read with the head, not counted by itself
  auto client = std::make_unique<test::raw_client>(srv.port());
  test::raw_client& c = *client;
  REQUIRE(c.send(test::make_request("POST", "/api/upload", gz, "X-API-Key: k\r\nContent-Encoding: gzip\r\n")));
  // Read up to the end of the response head (the rest stays unread).
  std::string got;
  for (int i = 0; i < 100 && got.find("\r\n\r\n") == std::string::npos; ++i) {
    pollfd p{c.fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 100) >= 0);
    if ((p.revents & POLLIN) == 0) continue;
    char buf[512];
    const ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got.append(buf, static_cast<std::size_t>(n));
  }
  REQUIRE(got.starts_with("HTTP/1.1 200"));
  REQUIRE(backend.request_count() == 1);
  CHECK(backend.requests()[0].body == plain);
  // The response is streaming: the decoded 256 KiB are still counted.
  CHECK(srv.server().live().body_bytes_buffered >= static_cast<std::int64_t>(plain.size()));
  CHECK(test::gauge(srv.port(), "body_bytes_buffered") >= static_cast<long long>(plain.size()));
  // The client leaves (closing with unread bytes: a reset): the request is
  // over and its bytes are given back.
  client.reset();
  CHECK(test::wait_until([&] { return srv.server().live().body_bytes_buffered == 0; }, std::chrono::seconds(5)));
}
