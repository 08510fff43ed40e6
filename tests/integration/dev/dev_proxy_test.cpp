// The gateway as a local development proxy: routes, the config file,
// reloads under load, WebSocket tunnels, request ids, readable logs.
#include <pty.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include "gateway/app/instance.hpp"
#include "gateway/core/config.hpp"
#include "gateway/core/config_file.hpp"
#include "gateway/proxy/tunnel.hpp"
#include "tests/integration/dev/websocket_peer.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::string get(std::string_view path, std::string_view extra = {}) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

std::string last_target(const test::recording_backend& b) {
  auto r = b.requests();
  return r.empty() ? std::string("(none)") : r.back().target;
}

core::config with_route(core::config cfg, std::string_view prefix, const std::string& url) {
  std::string err;
  if (!core::add_route(prefix, url, cfg.routes, err)) throw std::runtime_error(err);
  return cfg;
}

std::string temp_file(const std::string& text) {
  char name[] = "/tmp/gateway-dev-config-XXXXXX";
  int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(name) << text;
  return name;
}

}  // namespace

TEST_CASE("dev proxy: a / route takes every path no other route has, which otherwise get 404 before any middleware",
          "[integration][dev]") {
  test::recording_backend api, front;
  auto cfg = test::test_config();
  cfg.backend = api.url();
  cfg.api_keys = {"key-1"};
  {
    test::running_server plain(cfg);
    auto r = test::http_request(plain.port(), get("/elsewhere/page"));
    REQUIRE(r);
    CHECK(r->status == 404);
    CHECK(r->header("RateLimit-Limit").empty());
  }
  cfg = with_route(cfg, "/", front.url());
  test::running_server srv(cfg);
  auto r = test::http_request(srv.port(), get("/elsewhere/page?x=1"));
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(last_target(front) == "/elsewhere/page?x=1");  // a / route keeps the path
  // The gateway's own routes and /api/ stay theirs.
  CHECK(test::http_request(srv.port(), get("/health"))->status == 200);
  CHECK(test::http_request(srv.port(), get("/api/x"))->status == 401);
  CHECK(front.request_count() == 1);
}

TEST_CASE("dev proxy: two routes reach two backends with their prefixes removed, the longest prefix winning",
          "[integration][dev]") {
  test::recording_backend api, app, deep;
  auto cfg = test::test_config();
  cfg.backend = api.url();
  cfg.api_keys = {"key-1"};
  cfg = with_route(cfg, "/app", app.url());  // made "/app/"
  cfg = with_route(cfg, "/app/deep/", deep.url());
  test::running_server srv(cfg);

  auto r = test::http_request(srv.port(), get("/app/index.html?x=1"));
  REQUIRE(r);
  CHECK(r->status == 200);  // no auth on --route routes
  CHECK(last_target(app) == "/index.html?x=1");
  REQUIRE(test::http_request(srv.port(), get("/app"))->status == 200);
  CHECK(last_target(app) == "/");
  REQUIRE(test::http_request(srv.port(), get("/app/deep/thing"))->status == 200);
  CHECK(last_target(deep) == "/thing");
  CHECK(deep.request_count() == 1);
  CHECK(app.request_count() == 2);

  // The built-in /api/ keeps its auth; other paths get 404 before any middleware.
  CHECK(test::http_request(srv.port(), get("/api/users"))->status == 401);
  REQUIRE(test::http_request(srv.port(), get("/api/users", "X-API-Key: key-1\r\n"))->status == 200);
  CHECK(last_target(api) == "/users");
  CHECK(test::http_request(srv.port(), get("/elsewhere"))->status == 404);
  CHECK(test::http_request(srv.port(), get("/elsewhere", "X-API-Key: key-1\r\n"))->status == 404);
}

TEST_CASE("dev proxy: a config-file route can keep its prefix, ask for auth, rate-limit and validate bodies",
          "[integration][dev]") {
  test::recording_backend svc;
  auto cfg = test::test_config();
  const std::string text = R"({
    "api_key": ["key-1"],
    "rate_limit": "3/min",
    "routes": [
      {"prefix": "/svc/", "backend": ")" + svc.url() + R"(", "strip_prefix": false, "auth": true,
       "rate_limit": true, "timeout": "5s",
       "validate": [{"path": "/svc/users", "field": "name", "required": true, "max_len": 5}]}
    ]
  })";
  std::string err;
  REQUIRE(core::apply_config_text(text, "dev.json", cfg, err));
  INFO(err);
  REQUIRE(cfg.routes.size() == 1);
  test::running_server srv(cfg);

  CHECK(test::http_request(srv.port(), get("/svc/a"))->status == 401);
  auto ok = test::http_request(srv.port(), get("/svc/a", "X-API-Key: key-1\r\n"));
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(last_target(svc) == "/svc/a");
  CHECK(ok->header("RateLimit-Limit") == "3");
  auto bad = test::http_request(srv.port(), test::make_request("POST", "/svc/users", R"({"name":"far too long"})",
                                                               "X-API-Key: key-1\r\nContent-Type: application/json\r\n"));
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(bad->body == "Field too long: name\n");
  CHECK(svc.request_count() == 1);
  // The route's budget of 3 is spent (the 401 counted too): 429.
  CHECK(test::http_request(srv.port(), get("/svc/a", "X-API-Key: key-1\r\n"))->status == 429);
}

TEST_CASE("config file: a typo or a bad value is refused naming the key and its line", "[integration][dev]") {
  core::config cfg;
  std::string err;
  CHECK_FALSE(core::apply_config_text("{\n  \"listen\": \"127.0.0.1:0\",\n  \"listne\": \"x\"\n}", "config.json", cfg, err));
  CHECK(err == "config.json:3: unknown key 'listne'");
  CHECK_FALSE(core::apply_config_text("{\n\n  \"max_body\": \"huge\"\n}", "config.json", cfg, err));
  CHECK(err.rfind("config.json:3: 'max_body': invalid value 'huge': expected a size", 0) == 0);
  CHECK_FALSE(core::apply_config_text("{\"max-body\": \"1MiB\"}", "c.json", cfg, err));
  CHECK(err == "c.json:1: unknown key 'max-body' (config keys use '_' where flags use '-')");
  CHECK_FALSE(core::apply_config_text(
      "{\"routes\": [\n {\"prefix\": \"/a/\",\n  \"backend\": \"http://127.0.0.1:1\",\n  \"strip_prefx\": true}]}", "c.json",
      cfg, err));
  CHECK(err == "c.json:4: unknown key 'strip_prefx' (in a route)");
  CHECK_FALSE(core::apply_config_text("{\"routes\": [{\"prefix\": \"/a/\",\n \"backnd\": \"http://127.0.0.1:1\"}]}",
                                      "c.json", cfg, err));
  CHECK(err == "c.json:2: unknown key 'backnd' (in a route)");
  core::config fresh;
  CHECK_FALSE(core::apply_config_text("{\"routes\": [{\"prefix\": \"/a/\", \"backend\": \"ftp://x\"}]}", "c.json", fresh, err));
  CHECK(err == "c.json:1: 'ftp://x': expected http://HOST:PORT or https://HOST:PORT");
  CHECK_FALSE(core::apply_config_text("{\n\"threads\": 2,,\n}", "c.json", cfg, err));
  CHECK(err.rfind("c.json:2:", 0) == 0);
  CHECK_FALSE(core::apply_config_text("{\"compress_responses\": {}}", "c.json", cfg, err));
  CHECK(err == "c.json:1: 'compress_responses': expected a string, number or boolean");

  // A good file: numbers, booleans, lists; every flag's name works.
  core::config good;
  REQUIRE(core::apply_config_text(R"({"threads": 3, "compress_responses": true, "rate_limit": false,
      "api_key": ["a-key", "b-key"], "upstream_timeout": "7s", "route": ["/x=http://127.0.0.1:9"]})",
                                  "c.json", good, err));
  CHECK(good.threads == 3);
  CHECK(good.compress_responses);
  CHECK_FALSE(good.rate_limit_enabled);
  CHECK(good.api_keys.size() == 2);
  CHECK(good.upstream_timeout == 7s);
  REQUIRE(good.routes.size() == 1);
  CHECK(good.routes[0].prefix == "/x/");
}

TEST_CASE("config file: true and false are on and off only for the settings that take them, never a key or a name",
          "[integration][dev]") {
  std::string err;
  // Each would have become the text "on" or "off": an API key anyone could send, an issuer, a file name.
  for (const char* text : {"{\"api_key\": [true]}", "{\"api_key\": [\"k\", false]}", "{\"route\": [true]}"}) {
    core::config c;
    INFO(text);
    CHECK_FALSE(core::apply_config_text(text, "c.json", c, err));
    CHECK(err.find("expected a list of strings") != std::string::npos);
    CHECK(c.api_keys.size() <= 1);  // "k" may have been applied before the refusal: callers parse into a copy
  }
  for (const char* key : {"jwt_issuer", "tls_self_signed_pem", "threads", "listen"}) {
    core::config c;
    const std::string text = std::string("{\n\"") + key + "\": true}";
    CHECK_FALSE(core::apply_config_text(text, "c.json", c, err));
    CHECK(err == std::string("c.json:2: '") + key + "': true and false are only for on/off settings");
  }
  // Where on or off is a value of the flag, a boolean means it.
  core::config ok;
  REQUIRE(core::apply_config_text(
      R"({"compress_responses": false, "rate_limit": false, "tls": false, "access_log": false, "upstream_insecure": true,
          "proxy_protocol": false, "redirect_http": false, "health_check": false})",
      "c.json", ok, err));
  CHECK_FALSE(ok.compress_responses);
  CHECK_FALSE(ok.rate_limit_enabled);
  CHECK(ok.upstream_insecure);
  CHECK_FALSE(ok.proxy_protocol);
  CHECK_FALSE(ok.redirect_http);
  // true where only off is a word of the flag is a bad value of that flag, named as such.
  core::config on;
  CHECK_FALSE(core::apply_config_text("{\"rate_limit\": true}", "c.json", on, err));
  CHECK(err.find("c.json:1: 'rate_limit': invalid value 'on'") == 0);
}

TEST_CASE("config file: one prefix in \"routes\" and \"route\" is refused in either order, never replaced",
          "[integration][dev]") {
  const std::string object =
      R"({"prefix": "/x", "backend": "http://127.0.0.1:21100", "auth": true, "rate_limit": true})";
  const std::string flag = R"("/x/=http://127.0.0.1:21101")";
  for (const std::string& text : {"{\"routes\": [" + object + "],\n \"route\": [" + flag + "]}",
                                  "{\"route\": [" + flag + "],\n \"routes\": [" + object + "]}",
                                  "{\"route\": [" + flag + ",\n \"/x=http://127.0.0.1:21102\"]}"}) {
    core::config c;
    std::string err;
    INFO(text);
    CHECK_FALSE(core::apply_config_text(text, "c.json", c, err));
    CHECK(err == "c.json:2: route '/x/' is given twice");
  }
}

TEST_CASE("config file: flags override it, and --check-config answers 0 or 1 with the reason", "[integration][dev]") {
  const std::string path = temp_file(R"({"listen": "127.0.0.1:0", "rate_limit": "10/s", "threads": 1,
    "routes": [{"prefix": "/ui/", "backend": "http://127.0.0.1:5173"}]})");
  {
    const char* argv[] = {"gateway", "--rate-limit", "off", "--config", path.c_str(), "--threads=2"};
    core::config cfg;
    auto o = core::parse_args(6, argv, cfg);
    REQUIRE(o.what == core::parse_outcome::action::run);
    CHECK_FALSE(cfg.rate_limit_enabled);  // the flag wins, wherever it stands
    CHECK(cfg.threads == 2);
    CHECK(cfg.listen.port == 0);
    REQUIRE(cfg.routes.size() == 1);
    CHECK(cfg.config_file == path);
    const char* check[] = {"gateway", "--config", path.c_str(), "--check-config"};
    core::config c2;
    REQUIRE(core::parse_args(4, check, c2).what == core::parse_outcome::action::run);
    CHECK(c2.check_config);
    CHECK(app::run(c2) == 0);
  }
  std::ofstream(path) << "{\n  \"listen\": \"127.0.0.1:0\",\n  \"treads\": 2\n}\n";
  {
    const char* argv[] = {"gateway", "--config", path.c_str()};
    core::config cfg;
    auto o = core::parse_args(3, argv, cfg);
    CHECK(o.what == core::parse_outcome::action::error);
    CHECK(o.message == path + ":3: unknown key 'treads'");
    const char* check[] = {"gateway", "--check-config", "--config", path.c_str()};
    core::config c2;
    REQUIRE(core::parse_args(4, check, c2).what == core::parse_outcome::action::run);
    CHECK(c2.check_error == path + ":3: unknown key 'treads'");
    CHECK(app::run(c2) == 1);
  }
  std::remove(path.c_str());
}

TEST_CASE("reload: a changed route is served at once and not one request fails during a concurrent load",
          "[integration][dev]") {
  test::recording_backend one, two;
  auto cfg = with_route(test::test_config(), "/svc/", one.url());
  test::running_server srv(cfg);
  const auto port = srv.port();

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      const std::string req = get("/svc/ping");
      while (!stop) {
        // Keep-alive connections of various lengths: some requests start on
        // a connection that began before the reload.
        test::raw_client c(port, 5000ms);
        for (int i = 0; i < 20 + 17 * t && !stop; ++i) {
          if (!c.send(req)) {
            ++failed;
            break;
          }
          auto r = c.read_response();
          if (!r || r->status != 200) {
            ++failed;
            break;
          }
          ++ok;
        }
      }
    });
  }
  REQUIRE(test::wait_until([&] { return ok.load() > 300; }, 20s));

  auto next = with_route(with_route(test::test_config(), "/svc/", two.url()), "/new/", two.url());
  std::string message;
  REQUIRE(srv.app()->reload(next, message));
  INFO(message);
  auto fresh = test::http_request(port, get("/new/hello"));
  REQUIRE(fresh);
  CHECK(fresh->status == 200);
  bool hello = false;
  for (const auto& r : two.requests()) hello = hello || r.target == "/hello";
  CHECK(hello);
  const auto before = two.request_count();
  CHECK(test::wait_until([&] { return two.request_count() > before + 300; }, 20s));
  const auto one_count = one.request_count();

  // Back and forth a few more times under the same load.
  for (int i = 0; i < 6; ++i) {
    auto cfg_i = with_route(test::test_config(), "/svc/", (i % 2 == 0 ? one : two).url());
    REQUIRE(srv.app()->reload(cfg_i, message));
    const int at = ok.load();
    REQUIRE(test::wait_until([&] { return ok.load() > at + 50; }, 20s));
  }
  stop = true;
  for (auto& c : clients) c.join();
  CHECK(failed.load() == 0);
  CHECK(one.request_count() > one_count);  // the later reloads moved /svc/ back to one
  CHECK(srv.app()->reloads() == 7);

  // A setting that needs a restart is refused, and the running routes stay.
  auto moved = next;
  moved.listen.port = 1;
  CHECK_FALSE(srv.app()->reload(moved, message));
  CHECK(message == "changing listen needs a restart");
  // A key without its certificate (a start refuses the pair) would turn TLS on: a restart, not a half reload.
  auto key_only = next;
  key_only.tls_keys = {"/nonexistent/key.pem"};
  CHECK_FALSE(srv.app()->reload(key_only, message));
  CHECK(message == "changing tls (on or off, self-signed) needs a restart");
  auto bad_backend = with_route(test::test_config(), "/svc/", "http://no-such-host.invalid:1");
  CHECK_FALSE(srv.app()->reload(bad_backend, message));
  CHECK(test::http_request(port, get("/svc/still"))->status == 200);
  CHECK(srv.app()->reloads() == 7);
}

TEST_CASE("reload from the config file: a bad file is refused and the old routes stay", "[integration][dev]") {
  test::recording_backend one, two;
  const std::string path = temp_file(R"({"routes": [{"prefix": "/a/", "backend": ")" + one.url() + R"("}]})");
  auto cfg = test::test_config();
  const char* argv[] = {"gateway", "--config", path.c_str(), "--access-log", "off", "--listen", "127.0.0.1:0",
                        "--threads", "2", "--drain-timeout", "2s"};
  REQUIRE(core::parse_args(11, argv, cfg).what == core::parse_outcome::action::run);
  test::running_server srv(cfg);
  CHECK(test::http_request(srv.port(), get("/a/x"))->status == 200);

  std::ofstream(path) << "{\"routes\": [{\"prefix\": \"/b/\", \"backend\": \"" << two.url() << "\", \"auht\": false}]}";
  std::string message;
  CHECK_FALSE(srv.app()->reload_from_sources(message));
  CHECK(message == path + ":1: unknown key 'auht' (in a route)");
  CHECK(test::http_request(srv.port(), get("/a/x"))->status == 200);
  CHECK(one.request_count() == 2);
  // A key given twice is refused too: which backend was meant cannot be told.
  std::ofstream(path) << "{\"routes\": [{\"prefix\": \"/a/\", \"backend\": \"" << two.url()
                      << "\",\n \"backend\": \"" << one.url() << "\"}]}";
  CHECK_FALSE(srv.app()->reload_from_sources(message));
  CHECK(message == path + ":2: 'backend' given twice");
  CHECK(test::http_request(srv.port(), get("/a/x"))->status == 200);
  CHECK(one.request_count() == 3);

  std::ofstream(path) << "{\"routes\": [{\"prefix\": \"/b/\", \"backend\": \"" << two.url() << "\"}]}";
  REQUIRE(srv.app()->reload_from_sources(message));
  CHECK(test::http_request(srv.port(), get("/b/y"))->status == 200);
  CHECK(last_target(two) == "/y");
  CHECK(test::http_request(srv.port(), get("/a/x"))->status == 404);  // gone: an unknown path now
  std::remove(path.c_str());
}

TEST_CASE("websocket: 1,000 messages round-trip through the gateway's tunnel", "[integration][dev]") {
  test::ws::echo_server backend;
  auto cfg = with_route(test::test_config(), "/ws/", backend.url());
  test::running_server srv(cfg);

  int fd = test::ws::connect_to(srv.port());
  REQUIRE(fd >= 0);
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  REQUIRE(test::ws::write_all(fd, "GET /ws/chat?room=1 HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
                                  "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + key +
                                  "\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  test::ws::stream s(fd);
  auto head = s.read_head();
  REQUIRE(head);
  INFO(*head);
  CHECK(head->rfind("HTTP/1.1 101 ", 0) == 0);
  CHECK(test::ws::header_value(*head, "Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(test::ws::header_value(*head, "Upgrade") == "websocket");
  CHECK(test::ws::header_value(*head, "Connection") == "Upgrade");
  CHECK(head->find("Content-Length") == std::string::npos);
  const std::string seen = backend.last_request_head();
  CHECK(seen.rfind("GET /chat?room=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(test::ws::header_value(seen, "Upgrade") == "websocket");
  CHECK(test::ws::header_value(seen, "Connection") == "Upgrade");
  CHECK(test::ws::header_value(seen, "Sec-WebSocket-Key") == key);

  // In batches of 10 (several frames in flight each way), of sizes that use
  // all three length encodings.
  int matched = 0;
  for (int batch = 0; batch < 100; ++batch) {
    std::vector<std::string> sent;
    std::string out;
    for (int j = 0; j < 10; ++j) {
      const int i = batch * 10 + j;
      std::string msg = "message " + std::to_string(i);
      if (i % 97 == 0) msg.append(70000, static_cast<char>('a' + i % 26));
      else if (i % 13 == 0) msg.append(300, 'x');
      out += test::ws::encode({true, 0x1, msg}, true, 0x01020304u * static_cast<std::uint32_t>(i + 1));
      sent.push_back(std::move(msg));
    }
    REQUIRE(test::ws::write_all(fd, out));
    for (const auto& msg : sent) {
      auto f = test::ws::read_frame(s, false);
      REQUIRE(f);
      if (f->opcode == 0x1 && f->payload == msg) ++matched;
    }
  }
  CHECK(matched == 1000);
  CHECK(test::wait_until([&] { return backend.echoed() == 1000; }, 5s));  // counted after its write

  // Close handshake (RFC 6455 section 5.5.1), then both sides close.
  REQUIRE(test::ws::write_all(fd, test::ws::encode({true, 0x8, std::string("\x03\xe8", 2)}, true)));
  auto close = test::ws::read_frame(s, false);
  REQUIRE(close);
  CHECK(close->opcode == 0x8);
  CHECK(s.at_eof());
  ::close(fd);
  CHECK(test::wait_until([&] { return srv.server().live().connections == 0; }, 5s));
  CHECK(test::wait_until([&] { return srv.app()->state().upstream->live.load() == 0; }, 5s));
}

TEST_CASE("websocket: bytes sent with the handshake get through, and an idle tunnel is closed",
          "[integration][dev]") {
  test::ws::echo_server backend;
  auto cfg = with_route(test::test_config(), "/ws/", backend.url());
  cfg.tunnel_idle_timeout = 300ms;
  test::running_server srv(cfg);

  int fd = test::ws::connect_to(srv.port());
  REQUIRE(fd >= 0);
  // The first frame rides in the same segment as the request head.
  REQUIRE(test::ws::write_all(fd, "GET /ws/ HTTP/1.1\r\nHost: test\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
                                  test::ws::encode({true, 0x1, "early"}, true)));
  test::ws::stream s(fd);
  auto head = s.read_head();
  REQUIRE(head);
  CHECK(head->rfind("HTTP/1.1 101 ", 0) == 0);
  CHECK(test::ws::header_value(*head, "Sec-WebSocket-Accept") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  auto f = test::ws::read_frame(s, false);
  REQUIRE(f);
  CHECK(f->payload == "early");
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(s.at_eof());  // nothing moves: the gateway closes the tunnel
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  ::close(fd);

  // A 101 the backend sends for a request that did not ask to upgrade is a 502.
  test::recording_backend confused;
  confused.set_script([](const test::recorded_request&) {
    return test::reply{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 0,
                       test::reply::then::close};
  });
  auto cfg2 = with_route(test::test_config(), "/c/", confused.url());
  test::running_server srv2(cfg2);
  auto r = test::http_request(srv2.port(), get("/c/x"));
  REQUIRE(r);
  CHECK(r->status == 502);
}

TEST_CASE("websocket: an HTTP/1.0 request's Upgrade is ignored and answered as a plain request", "[integration][dev]") {
  test::recording_backend app;
  app.set_script([](const test::recorded_request& r) {
    // A backend that would switch whenever it sees Upgrade.
    if (r.head.find("\r\nUpgrade:") != std::string::npos)
      return test::reply{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 0,
                         test::reply::then::close};
    return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain", 0, test::reply::then::keep_open};
  });
  auto cfg = with_route(test::test_config(), "/ws/", app.url());
  test::running_server srv(cfg);
  auto r = test::http_request(srv.port(),
                              "GET /ws/chat HTTP/1.0\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "plain");
  auto seen = app.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].head.find("\r\nUpgrade:") == std::string::npos);
}

TEST_CASE("websocket: the 101 head is parsed strictly", "[integration][dev]") {
  core::arena mem;
  http::header_list fields(mem);
  CHECK(proxy::parse_switching_head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX: a b \r\n\r\n", fields));
  CHECK(fields.value_of("x") == "a b");
  http::header_list f2(mem);
  CHECK_FALSE(proxy::parse_switching_head("HTTP/1.1 101 OK\r\nUpgrade : websocket\r\n\r\n", f2));
  CHECK_FALSE(proxy::parse_switching_head("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n folded\r\n\r\n", f2));
  CHECK_FALSE(proxy::parse_switching_head("HTTP/1.1 200 OK\r\n\r\n", f2));
  CHECK(proxy::is_switching_head("HTTP/1.1 101\r\nUpgrade: x\r\n\r\n"));
  CHECK_FALSE(proxy::is_switching_head("HTTP/1.1 1010 x\r\n\r\n"));
}

TEST_CASE("request ids: the client's id and a generated one reach the backend, come back, and are in /logs",
          "[integration][dev]") {
  test::recording_backend app;
  auto cfg = with_route(test::test_config(), "/app/", app.url());
  cfg.api_keys = {"key-1"};
  test::running_server srv(cfg);

  auto given = test::http_request(srv.port(), get("/app/a", "X-Request-Id: dev-req-42\r\n"));
  REQUIRE(given);
  CHECK(given->header("X-Request-Id") == "dev-req-42");
  auto generated = test::http_request(srv.port(), get("/app/b"));
  REQUIRE(generated);
  const std::string id = generated->header("X-Request-Id");
  REQUIRE(id.size() >= 8);
  auto seen = app.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].head.find("\r\nX-Request-Id: dev-req-42\r\n") != std::string::npos);
  CHECK(seen[1].head.find("\r\nX-Request-Id: " + id + "\r\n") != std::string::npos);

  auto logs = test::http_request(srv.port(), get("/logs", "X-API-Key: key-1\r\n"));
  REQUIRE(logs);
  REQUIRE(logs->status == 200);
  CHECK(logs->body.find("\"request_id\":\"dev-req-42\"") != std::string::npos);
  CHECK(logs->body.find("\"request_id\":\"" + id + "\"") != std::string::npos);
}

TEST_CASE("access log: auto is the coloured format on a terminal and text otherwise", "[integration][dev]") {
  int master = -1, slave = -1;
  REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
  std::FILE* tty = ::fdopen(slave, "w");
  REQUIRE(tty != nullptr);
  auto cfg = test::test_config();
  cfg.access_log = "auto";
  {
    app::shared_state on_tty(cfg, tty);
    CHECK(on_tty.access.format() == middleware::access_log_format::pretty);
  }
  std::FILE* file = std::tmpfile();
  REQUIRE(file != nullptr);
  {
    app::shared_state on_file(cfg, file);
    CHECK(on_file.access.format() == middleware::access_log_format::text);
    cfg.access_log = "json";
    app::shared_state chosen(cfg, tty);
    CHECK(chosen.access.format() == middleware::access_log_format::json);
  }
  std::fclose(file);
  std::fclose(tty);
  ::close(master);
}

TEST_CASE("access log: a proxied request names the backend that served it, a local answer names none",
          "[integration][dev]") {
  test::recording_backend backend;
  auto cfg = test::test_config();
  cfg.backend = backend.url();
  cfg.access_log = "json";
  cfg.api_keys = {"log-key"};
  std::FILE* file = std::tmpfile();
  REQUIRE(file != nullptr);
  {
    app::instance gw(cfg, file);
    gw.start();
    auto proxied = test::http_request(gw.port(), test::make_request("GET", "/api/things", {}, "X-API-Key: log-key\r\n"));
    REQUIRE(proxied);
    CHECK(proxied->status == 200);
    auto local = test::http_request(gw.port(), test::make_request("GET", "/health"));
    REQUIRE(local);
    CHECK(local->status == 200);
    gw.stop();
    gw.wait();
  }  // the access log's writer has flushed once the instance is gone
  std::fflush(file);
  std::rewind(file);
  std::string text;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, file)) > 0;) text.append(buf, n);
  std::fclose(file);
  const std::string backend_field = "\"upstream\":\"127.0.0.1:" + std::to_string(backend.port()) + "\"";
  auto api_line = text.find("\"path\":\"/api/things\"");
  auto health_line = text.find("\"path\":\"/health\"");
  REQUIRE(api_line != std::string::npos);
  REQUIRE(health_line != std::string::npos);
  CHECK(text.substr(api_line, text.find('\n', api_line) - api_line).find(backend_field) != std::string::npos);
  CHECK(text.substr(health_line, text.find('\n', health_line) - health_line).find("\"upstream\":\"\"") !=
        std::string::npos);
}
