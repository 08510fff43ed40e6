// Per-route header rules and Host through the real proxy to a recording
// backend, and the start-up errors of rules a route may not have (the
// gateway binary as a child process).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "gateway/core/config.hpp"
#include "gateway/core/config_file.hpp"
#include "gateway/http/header_list.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// Every value of `name` in a raw request head, in order.
std::vector<std::string> field_values(const std::string& head, std::string_view name) {
  std::vector<std::string> out;
  std::size_t at = head.find("\r\n");
  while (at != std::string::npos && at + 2 < head.size()) {
    const std::size_t end = head.find("\r\n", at + 2);
    if (end == std::string::npos) break;
    const std::string line = head.substr(at + 2, end - at - 2);
    const auto colon = line.find(':');
    if (colon != std::string::npos && http::iequals(line.substr(0, colon), name)) {
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      out.push_back(v);
    }
    at = end;
  }
  return out;
}

using values = std::vector<std::string>;

std::string temp_file(const std::string& text) {
  char name[] = "/tmp/gateway-header-rules-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(name) << text;
  return name;
}

}  // namespace

TEST_CASE("header rules set, add and remove request and response headers per route, with substitutions",
          "[integration][proxy][headers]") {
  test::recording_backend app, plain;
  const std::string backend_reply_headers = "Server: backend/1.0\r\nCache-Control: public\r\nX-Kept: yes\r\n";
  for (auto* b : {&app, &plain})
    b->set_script([&](const test::recorded_request&) { return test::reply{test::ok_response("ok", backend_reply_headers)}; });
  auto cfg = test::test_config();
  std::string err;
  const std::string text = R"({"routes": [
    {"prefix": "/app/", "backend": ")" + app.url() + R"(",
     "request_headers": {"set": {"X-Client": "${client_ip}", "X-Trace": "id=${request_id} route=${route}"},
                         "add": {"X-Tag": ["a", "b"]}, "remove": ["Cookie", "X-Forwarded-For"]},
     "response_headers": {"set": {"Cache-Control": "no-store"}, "add": {"X-Served-By": "gateway ${route}"},
                          "remove": ["Server"]}},
    {"prefix": "/plain/", "backend": ")" + plain.url() + R"("}]})";
  REQUIRE(core::apply_config_text(text, "rules.json", cfg, err));
  INFO(err);
  test::running_server srv(cfg);

  const std::string client_fields =
      "Cookie: session=secret\r\nX-Forwarded-For: 10.9.9.9\r\nX-Request-Id: abc-123\r\nX-Client: forged\r\n"
      "X-Tag: client\r\n";
  auto r = test::http_request(srv.port(), "GET /app/x HTTP/1.1\r\nHost: test\r\n" + client_fields + "\r\n");
  REQUIRE(r);
  CHECK(r->status == 200);
  REQUIRE(app.request_count() == 1);
  const std::string head = app.requests().back().head;
  INFO(head);
  CHECK(field_values(head, "cookie").empty());
  CHECK(field_values(head, "x-forwarded-for") == values{"127.0.0.1"});  // started afresh, not "10.9.9.9, 127.0.0.1"
  CHECK(field_values(head, "x-client") == values{"127.0.0.1"});
  CHECK(field_values(head, "x-trace") == values{"id=abc-123 route=/app/"});
  CHECK(field_values(head, "x-tag") == values{"client", "a", "b"});
  CHECK(field_values(head, "host") == values{"test"});  // the client's, by default
  CHECK(field_values(head, "x-request-id") == values{"abc-123"});

  CHECK(r->count("server") == 0);
  CHECK(r->count("cache-control") == 1);
  CHECK(r->header("cache-control") == "no-store");
  CHECK(r->header("x-served-by") == "gateway /app/");
  CHECK(r->header("x-kept") == "yes");
  CHECK(r->header("x-request-id") == "abc-123");

  // A generated request id is the one substituted.
  auto g = test::http_request(srv.port(), "GET /app/y HTTP/1.1\r\nHost: test\r\n\r\n");
  REQUIRE(g);
  const std::string id = g->header("x-request-id");
  REQUIRE(id.size() == 32);
  CHECK(field_values(app.requests().back().head, "x-trace") == values{"id=" + id + " route=/app/"});

  // A route without rules forwards the client's fields and the backend's as they were.
  auto p = test::http_request(srv.port(), "GET /plain/x HTTP/1.1\r\nHost: test\r\n" + client_fields + "\r\n");
  REQUIRE(p);
  REQUIRE(plain.request_count() == 1);
  const std::string plain_head = plain.requests().back().head;
  CHECK(field_values(plain_head, "cookie") == values{"session=secret"});
  CHECK(field_values(plain_head, "x-forwarded-for") == values{"10.9.9.9, 127.0.0.1"});
  CHECK(field_values(plain_head, "x-client") == values{"forged"});
  CHECK(field_values(plain_head, "x-trace").empty());
  CHECK(p->header("server") == "backend/1.0");
  CHECK(p->header("cache-control") == "public");
  CHECK(p->count("x-served-by") == 0);
}

TEST_CASE("header rules: response rules apply to the gateway's own 502 for the backend, not to a 401 before it",
          "[integration][proxy][headers]") {
  auto cfg = test::test_config();
  cfg.api_keys = {"key-1"};
  std::string err;
  const std::string text = R"({"routes": [
    {"prefix": "/down/", "backend": "http://127.0.0.1:)" + std::to_string(test::closed_port()) + R"(", "auth": true,
     "response_headers": {"set": {"X-Route-Rule": "applied"}}}]})";
  REQUIRE(core::apply_config_text(text, "down.json", cfg, err));
  test::running_server srv(cfg);
  auto bad_gateway = test::http_request(srv.port(), "GET /down/x HTTP/1.1\r\nHost: t\r\nX-API-Key: key-1\r\n\r\n");
  REQUIRE(bad_gateway);
  CHECK(bad_gateway->status == 502);
  CHECK(bad_gateway->header("x-route-rule") == "applied");
  auto unauthorised = test::http_request(srv.port(), "GET /down/x HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(unauthorised);
  CHECK(unauthorised->status == 401);
  CHECK(unauthorised->count("x-route-rule") == 0);
}

TEST_CASE("header rules: host upstream sends the backend's authority as Host, the client's in X-Forwarded-Host",
          "[integration][proxy][headers]") {
  test::recording_backend up, client_host;
  auto cfg = test::test_config();
  std::string err;
  const std::string text = R"({"routes": [
    {"prefix": "/up/", "backend": ")" + up.url() + R"(", "host": "upstream"},
    {"prefix": "/client/", "backend": ")" + client_host.url() + R"(", "host": "client"}]})";
  REQUIRE(core::apply_config_text(text, "host.json", cfg, err));
  test::running_server srv(cfg);

  REQUIRE(test::http_request(srv.port(), "GET /up/x HTTP/1.1\r\nAccept: */*\r\nHost: public.example\r\n\r\n")->status ==
          200);
  const std::string head = up.requests().back().head;
  INFO(head);
  CHECK(field_values(head, "host") == values{"127.0.0.1:" + std::to_string(up.port())});
  CHECK(head.find("Accept: */*\r\nHost: 127.0.0.1:") != std::string::npos);  // in the client's field's place
  CHECK(field_values(head, "x-forwarded-host") == values{"public.example"});

  REQUIRE(test::http_request(srv.port(), "GET /client/x HTTP/1.1\r\nHost: public.example\r\n\r\n")->status == 200);
  CHECK(field_values(client_host.requests().back().head, "host") == values{"public.example"});

  // An HTTP/1.0 client without Host: the backend's authority either way.
  REQUIRE(test::http_request(srv.port(), "GET /up/y HTTP/1.0\r\n\r\n")->status == 200);
  CHECK(field_values(up.requests().back().head, "host") == values{"127.0.0.1:" + std::to_string(up.port())});
  CHECK(field_values(up.requests().back().head, "x-forwarded-host").empty());
}

TEST_CASE("header rules a route may not have stop the gateway at start-up with exit 2, naming the route and the key",
          "[integration][proxy][headers]") {
  struct bad_rule {
    std::string route_keys;
    std::string message;
  };
  const std::vector<bad_rule> cases = {
      {R"("request_headers": {"set": {"X-Who": "${user}"}})",
       "route /app/: request_headers.set 'X-Who': unknown substitution ${user} (use ${client_ip}, ${request_id} or "
       "${route})"},
      {R"("response_headers": {"add": {"X-Id": "${request_id"}})",
       "route /app/: response_headers.add 'X-Id': '${' without its '}'"},
      {R"("response_headers": {"set": {"Transfer-Encoding": "chunked"}})",
       "route /app/: response_headers.set 'Transfer-Encoding': cannot be changed here: is a hop-by-hop or framing "
       "field"},
      {R"("request_headers": {"set": {"Content-Length": "0"}})",
       "route /app/: request_headers.set 'Content-Length': cannot be changed here"},
      {R"("request_headers": {"add": {"Connection": "close"}})",
       "route /app/: request_headers.add 'Connection': cannot be changed here"},
      {R"("request_headers": {"set": {"Host": "internal"}})",
       "route /app/: request_headers.set 'Host': cannot be changed here: the Host sent upstream is the client's, or "
       "the backend's with \"host\": \"upstream\""},
  };
  for (const auto& c : cases) {
    INFO(c.route_keys);
    const std::string path = temp_file(R"({"routes": [{"prefix": "/app/", "backend": "http://127.0.0.1:9", )" +
                                       c.route_keys + "}]}");
    test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--config", path, "--listen", "127.0.0.1:0",
                            "--access-log", "off"});
    const auto status = gw.wait_exit(15s);
    ::unlink(path.c_str());
    REQUIRE(status);
    CHECK(*status == 2);
    CHECK_THAT(gw.err(), Catch::Contains("gateway: " + c.message));
    CHECK(gw.err().find("listening on") == std::string::npos);
  }
}
