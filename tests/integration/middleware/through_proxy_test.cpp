// The middleware chain in front of a recording backend: what the backend
// receives after decompression and validation. (That the body is read and
// buffered once is measured from outside, in body_bytes_test.cpp.)
#include <catch2/catch.hpp>

#include <zlib.h>

#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/gunzip.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using test::gunzip;
using namespace std::chrono_literals;

namespace {

core::config config_for(const test::recording_backend& backend) {
  auto cfg = test::test_config();
  cfg.backend = backend.url();
  cfg.api_keys = {"k"};
  std::string err;
  REQUIRE(core::parse_validation_rule("/api/users:name:required,min_len=2,max_len=5", cfg.validation, err));
  REQUIRE(core::parse_validation_rule("/api/users:email:required", cfg.validation, err));
  return cfg;
}

}  // namespace

TEST_CASE("a gzip request body reaches the backend decompressed, without Content-Encoding",
          "[integration][middleware]") {
  test::recording_backend backend;
  test::running_server srv(config_for(backend));
  std::string plain;
  for (int i = 0; i < 2000; ++i) plain += "line " + std::to_string(i) + " of a compressible body\n";
  auto r = test::http_request(srv.port(), test::make_request("POST", "/api/upload", test::gzip_bytes(plain),
                                                             "X-API-Key: k\r\nContent-Encoding: gzip\r\n"));
  REQUIRE(r);
  CHECK(r->status == 200);
  auto got = backend.requests();
  REQUIRE(got.size() == 1);
  CHECK(got[0].body == plain);
  CHECK(got[0].head.find("Content-Length: " + std::to_string(plain.size()) + "\r\n") != std::string::npos);
  CHECK(got[0].head.find("Content-Encoding") == std::string::npos);
  CHECK(got[0].target == "/upload");
}

TEST_CASE("validation: POST and PUT bodies must be JSON objects meeting the route's field rules",
          "[integration][middleware]") {
  test::recording_backend backend;
  test::running_server srv(config_for(backend));
  auto send = [&](std::string_view method, std::string_view target, std::string_view body) {
    return test::http_request(srv.port(), test::make_request(method, target, body, "X-API-Key: k\r\n"));
  };
  struct expectation {
    std::string method, body;
    int status;
    std::string message;
  };
  const std::vector<expectation> cases = {
      {"POST", "not json", 400, "Invalid JSON\n"},
      {"POST", "[1,2]", 400, "Invalid JSON\n"},
      {"POST", R"({"name":"ab",})", 400, "Invalid JSON\n"},
      {"PUT", R"({"email":"a@b"})", 400, "Missing field: name\n"},
      {"POST", R"({"name":"ab"})", 400, "Missing field: email\n"},
      {"POST", R"({"name":"a","email":"a@b"})", 400, "Field too short: name\n"},
      {"POST", R"({"name":"abcdef","email":"a@b"})", 400, "Field too long: name\n"},
      {"POST", R"({"name":"\u00e9t\u00e9!","email":"a@b"})", 200, ""},  // 4 characters, 6 bytes
      {"POST", R"({"name":"abc","email":"a@b","extra":[1,{"x":null}]})", 200, ""},
      // A checked field given twice is refused whichever occurrence is valid:
      // the backend may read the other one.
      {"POST", R"({"name":"abc","email":"a@b","name":""})", 400, "Duplicate field: name\n"},
      {"POST", R"({"name":"","name":"abc","email":"a@b"})", 400, "Duplicate field: name\n"},
      {"POST", R"({"name":"abc","email":"a@b","email":"c@d"})", 400, "Duplicate field: email\n"},
      {"PUT", R"({"name":"abc","email":"a@b","name":null})", 400, "Duplicate field: name\n"},
      // Unchecked members may repeat, also at the top level.
      {"POST", R"({"name":"abc","email":"a@b","x":1,"x":2,"extra":{"name":1,"name":2}})", 200, ""},
  };
  for (const auto& c : cases) {
    INFO(c.method << " " << c.body);
    auto r = send(c.method, "/api/users/7", c.body);
    REQUIRE(r);
    CHECK(r->status == c.status);
    if (!c.message.empty()) CHECK(r->body == c.message);
  }
  // Only the valid ones reached the backend; GET and other routes are not validated.
  CHECK(backend.request_count() == 3);
  CHECK(send("GET", "/api/users/7", "")->status == 200);
  CHECK(send("POST", "/api/other", "not json")->status == 200);
}

TEST_CASE("validation: a rule covers its path segment by segment, as backends read the path",
          "[integration][middleware]") {
  test::recording_backend backend;
  auto cfg = test::test_config();
  cfg.backend = backend.url();
  cfg.api_keys = {"k"};
  std::string err;
  REQUIRE(core::parse_validation_rule("/api/users:name:required,min_len=2", cfg.validation, err));
  REQUIRE(core::parse_validation_rule("/api/items/:sku:required", cfg.validation, err));
  test::running_server srv(cfg);
  auto status = [&](std::string_view target, std::string_view body) {
    auto r = test::http_request(srv.port(), test::make_request("POST", target, body, "X-API-Key: k\r\n"));
    REQUIRE(r);
    return r->status;
  };
  // Each of these is /api/users or below it once unreserved characters are
  // decoded (RFC 3986 6.2.2.2) and runs of '/' merged: the rule applies.
  for (const char* target : {"/api/users", "/api/users/", "/api/users/7", "/api/%75sers", "/api/u%73ers/7",
                             "/api/%55%73ers", "/api//users", "/api///users//7", "/api/users?x=1", "/api/%7573ers"}) {
    INFO(target);
    // "/api/%55%73ers" is "/api/Users": paths are case-sensitive, not validated.
    // "/api/%7573ers" is "/api/u73ers": one escape is decoded once.
    const bool covered = std::string_view(target) != "/api/%55%73ers" && std::string_view(target) != "/api/%7573ers";
    CHECK(status(target, R"({"name":"x"})") == (covered ? 400 : 200));
  }
  // A rule ends at a segment boundary: these are other endpoints.
  for (const char* target : {"/api/usersX", "/api/users.json", "/api/user", "/api/Users", "/api/users%2F7"}) {
    INFO(target);
    CHECK(status(target, R"({"name":"x"})") == 200);
  }
  // A rule given with a final '/' covers the path without it too, as the
  // router's prefixes do.
  CHECK(status("/api/items", "{}") == 400);
  CHECK(status("/api/items/9", "{}") == 400);
  CHECK(status("/api/itemsX", "{}") == 200);
  CHECK(status("/api/items/9", R"({"sku":"a"})") == 200);
}

TEST_CASE("validation: a path with %2F or %2f meets the route the router picks and that route's rules",
          "[integration][middleware]") {
  // "%2F" is data, not a separator, and "%2f" is the same escape (RFC 3986
  // section 6.2.2.1): the router and the validation rules must agree on it.
  test::recording_backend api, files;
  auto cfg = test::test_config();
  cfg.backend = api.url();
  cfg.api_keys = {"k"};
  std::string err;
  REQUIRE(core::add_route("/api/a%2Fb/", files.url(), cfg.routes, err));
  REQUIRE(core::parse_validation_rule("/api/a%2Fb:name:required", cfg.validation, err));
  test::running_server srv(cfg);
  auto send = [&](std::string_view target, std::string_view body) {
    auto r = test::http_request(srv.port(), test::make_request("POST", target, body, "X-API-Key: k\r\n"));
    REQUIRE(r);
    return *r;
  };
  std::size_t to_files = 0;
  for (const char* target : {"/api/a%2Fb/x", "/api/a%2fb/x", "/api/a%2Fb", "/api/a%2fb", "/api/a%2fb/"}) {
    INFO(target);
    const auto refused = send(target, "{}");
    CHECK(refused.status == 400);
    CHECK(refused.body == "Missing field: name\n");
    CHECK(send(target, R"({"name":"x"})").status == 200);
    CHECK(files.request_count() == ++to_files);  // the route's backend, not /api/'s
  }
  CHECK(api.request_count() == 0);
  // "/api/a/b/x" has a separator where the others have data: another path,
  // the /api/ route's, which has no rule for it.
  CHECK(send("/api/a/b/x", "{}").status == 200);
  CHECK(api.request_count() == 1);
  CHECK(files.request_count() == to_files);
}

TEST_CASE("response compression gzips compressible responses for clients that accept it, streamed ones too",
          "[integration][middleware]") {
  test::recording_backend backend;
  std::string text;
  for (int i = 0; i < 500; ++i) text += "{\"n\":" + std::to_string(i) + ",\"text\":\"compressible\"}\n";
  backend.set_script([&](const test::recorded_request& r) {
    test::reply rep;
    if (r.target == "/chunked") {
      rep.bytes = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
      char size[16];
      std::snprintf(size, sizeof size, "%zx\r\n", text.size());
      rep.bytes += size + text + "\r\n0\r\n\r\n";
    } else if (r.target == "/png") {
      rep.bytes = test::ok_response(text, "Content-Type: image/png\r\n");
    } else {
      rep.bytes = test::ok_response(text, "Content-Type: application/json\r\n");
    }
    return rep;
  });
  auto cfg = test::test_config();
  cfg.backend = backend.url();
  cfg.api_keys = {"k"};
  cfg.compress_responses = true;
  test::running_server srv(cfg);
  for (const char* path : {"/api/plain", "/api/chunked"}) {
    INFO(path);
    auto r = test::http_request(srv.port(), test::make_request("GET", path, {}, "X-API-Key: k\r\nAccept-Encoding: gzip\r\n"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("Content-Encoding") == "gzip");
    CHECK(r->header("Vary") == "Accept-Encoding");
    CHECK(r->body.size() < text.size() / 4);
    CHECK(gunzip(r->body) == text);
  }
  auto no_accept = test::http_request(srv.port(), test::make_request("GET", "/api/plain", {}, "X-API-Key: k\r\n"));
  CHECK(no_accept->header("Content-Encoding").empty());
  CHECK(no_accept->body == text);
  auto refused = test::http_request(srv.port(), test::make_request("GET", "/api/plain", {}, "X-API-Key: k\r\nAccept-Encoding: gzip;q=0\r\n"));
  CHECK(refused->header("Content-Encoding").empty());
  auto png = test::http_request(srv.port(), test::make_request("GET", "/api/png", {}, "X-API-Key: k\r\nAccept-Encoding: gzip\r\n"));
  CHECK(png->header("Content-Encoding").empty());
  CHECK(png->body == text);
}
