#include "gateway/middleware/header_rules.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "gateway/core/arena.hpp"

using namespace gateway;

namespace {

// An exchange as the connection and the outer layers leave it for a route.
struct test_exchange {
  core::arena mem;
  http::exchange ex;
  test_exchange() {
    ex.ctx.mem = &mem;
    ex.req.headers = http::header_list(mem);
    ex.res.headers = http::header_list(mem);
    ex.ctx.client_ip = "192.0.2.7";
    ex.ctx.request_id = "req-42";
    ex.ctx.route = "/app/";
  }
};

// Edits of one kind: set or add (name, value pairs) or remove (names).
core::header_edits set_of(std::vector<std::pair<std::string, std::string>> v) {
  core::header_edits e;
  e.set = std::move(v);
  return e;
}
core::header_edits add_of(std::vector<std::pair<std::string, std::string>> v) {
  core::header_edits e;
  e.add = std::move(v);
  return e;
}
core::header_edits remove_of(std::vector<std::string> v) {
  core::header_edits e;
  e.remove = std::move(v);
  return e;
}

core::route_config route_with(core::header_edits request, core::header_edits response = {}) {
  core::route_config r;
  r.prefix = "/app/";
  r.backend = "http://127.0.0.1:1";
  r.request_headers = std::move(request);
  r.response_headers = std::move(response);
  return r;
}

// The message compile_header_rules throws for `r`, or "" when it accepts it.
std::string refusal(const core::route_config& r) {
  try {
    middleware::compile_header_rules(r);
    return "";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

std::string values(const http::header_list& fields, std::string_view name) {
  std::string out;
  for (const auto& f : fields) {
    if (!http::iequals(f.name, name)) continue;
    if (!out.empty()) out += "|";
    out += f.value;
  }
  return out;
}

}  // namespace

TEST_CASE("header templates substitute the client address, the request id and the route", "[unit][middleware]") {
  test_exchange t;
  CHECK(middleware::header_template("plain").expand(t.ex) == "plain");
  CHECK(middleware::header_template("").expand(t.ex).empty());
  CHECK(middleware::header_template("${client_ip}").expand(t.ex) == "192.0.2.7");
  CHECK(middleware::header_template("ip=${client_ip}; id=${request_id}; r=${route}!").expand(t.ex) ==
        "ip=192.0.2.7; id=req-42; r=/app/!");
  CHECK(middleware::header_template("${request_id}${request_id}").expand(t.ex) == "req-42req-42");
  // A '$' not opening "${" is text.
  CHECK(middleware::header_template("cost $5 {x}").expand(t.ex) == "cost $5 {x}");
  // A constant value costs the arena nothing; a substituted one is built there.
  const std::size_t before = t.mem.bytes_used();
  middleware::header_template("constant").expand(t.ex);
  CHECK(t.mem.bytes_used() == before);
  middleware::header_template("${client_ip}").expand(t.ex);
  CHECK(t.mem.bytes_used() == before + 9);
}

TEST_CASE("header templates refuse unknown substitutions, open ones and bytes a value may not hold",
          "[unit][middleware]") {
  auto message = [](std::string_view text) -> std::string {
    try {
      middleware::header_template t(text);
      return "";
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
  };
  CHECK_THAT(message("${user}"), Catch::Contains("unknown substitution ${user}") &&
                                     Catch::Contains("${client_ip}, ${request_id} or ${route}"));
  CHECK_THAT(message("a ${CLIENT_IP}"), Catch::Contains("unknown substitution ${CLIENT_IP}"));
  CHECK_THAT(message("${}"), Catch::Contains("unknown substitution ${}"));
  CHECK_THAT(message("x ${client_ip"), Catch::Contains("without its '}'"));
  CHECK_THAT(message("a\r\nX-Evil: 1"), Catch::Contains("not a valid header value"));
  CHECK_THAT(message(std::string("a\0b", 3)), Catch::Contains("not a valid header value"));
  CHECK_THAT(message(" padded"), Catch::Contains("not a valid header value"));
  CHECK(message("tab\tinside").empty());
}

TEST_CASE("header rules remove, then set, then add, both ways", "[unit][middleware]") {
  core::header_edits req;
  req.remove = {"Cookie", "X-Forwarded-For"};
  req.set = {{"X-Client", "${client_ip}"}, {"Accept", "application/json"}};
  req.add = {{"X-Tag", "a"}, {"X-Tag", "b-${request_id}"}, {"Accept", "text/plain"}};
  core::header_edits res;
  res.remove = {"server"};
  res.set = {{"Cache-Control", "no-store"}};
  res.add = {{"X-Route", "${route}"}};
  auto r = route_with(req, res);
  const auto rules = middleware::compile_header_rules(r);
  CHECK_FALSE(rules.empty());

  test_exchange t;
  auto& in = t.ex.req.headers;
  in.add("Host", "example.test");
  in.add("Cookie", "a=1");
  in.add("cookie", "b=2");
  in.add("X-Client", "forged");
  in.add("X-Forwarded-For", "10.0.0.1");
  in.add("Accept", "*/*");
  in.add("X-Tag", "client");
  auto layer = middleware::make_header_rules(rules);
  http::layer_state state;
  REQUIRE(layer->enter(t.ex, state) == http::step::next);
  CHECK(in.count("cookie") == 0);
  CHECK(in.count("x-forwarded-for") == 0);
  CHECK(values(in, "x-client") == "192.0.2.7");
  CHECK(values(in, "accept") == "application/json|text/plain");
  CHECK(values(in, "x-tag") == "client|a|b-req-42");
  CHECK(values(in, "host") == "example.test");

  auto& out = t.ex.res.headers;
  out.add("Server", "backend/1.0");
  out.add("Cache-Control", "public");
  out.add("Cache-Control", "max-age=60");
  out.add("Content-Type", "text/plain");
  layer->leave(t.ex, state);
  CHECK(out.count("server") == 0);
  CHECK(values(out, "cache-control") == "no-store");
  CHECK(values(out, "x-route") == "/app/");
  CHECK(values(out, "content-type") == "text/plain");
}

TEST_CASE("header rules refuse names the gateway writes itself, naming the key and the header", "[unit][middleware]") {
  auto set_req = [](std::string name) { return route_with(set_of({{std::move(name), "x"}})); };
  auto set_res = [](std::string name) { return route_with({}, set_of({{std::move(name), "x"}})); };
  for (const char* name : {"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "TE", "Trailer",
                           "Upgrade", "Proxy-Connection"}) {
    INFO(name);
    CHECK_THAT(refusal(set_req(name)), Catch::Contains(std::string("request_headers.set '") + name + "'") &&
                                           Catch::Contains("hop-by-hop or framing"));
    CHECK_THAT(refusal(set_res(name)), Catch::Contains(std::string("response_headers.set '") + name + "'"));
  }
  CHECK_THAT(refusal(set_req("host")), Catch::Contains("'host'") && Catch::Contains("\"host\": \"upstream\""));
  CHECK_THAT(refusal(route_with(remove_of({"Host"}))), Catch::Contains("request_headers.remove 'Host'"));
  CHECK_THAT(refusal(route_with(add_of({{"Content-Length", "1"}}))),
             Catch::Contains("request_headers.add 'Content-Length'"));
  CHECK_THAT(refusal(set_req("X-Forwarded-Proto")), Catch::Contains("the proxy writes it"));
  CHECK_THAT(refusal(set_req("X-Forwarded-For")), Catch::Contains("appends the client's address"));
  CHECK(refusal(route_with(remove_of({"X-Forwarded-For"}))).empty());
  // Host is the request's business only: a response may carry one.
  CHECK(refusal(set_res("Host")).empty());
  CHECK_THAT(refusal(set_req("Bad Name")), Catch::Contains("not a valid header name"));
  CHECK_THAT(refusal(route_with(set_of({{"X-A", "1"}, {"x-a", "2"}}))), Catch::Contains("given twice"));
  auto both = set_of({{"X-A", "1"}});
  both.remove = {"x-a"};
  CHECK_THAT(refusal(route_with(both)), Catch::Contains("also in \"remove\""));
  CHECK_THAT(refusal(route_with(add_of({{"X-Who", "${user}"}}))),
             Catch::Contains("request_headers.add 'X-Who': unknown substitution ${user}"));
  // With CORS on the route, its fields belong to the CORS layer.
  auto with_cors = set_res("Access-Control-Allow-Origin");
  CHECK(refusal(with_cors).empty());
  with_cors.cors = core::cors_config{};
  with_cors.cors->origins = {"*"};
  CHECK_THAT(refusal(with_cors), Catch::Contains("\"cors\""));
  // No rules at all: the pipeline adds no layer for the route.
  CHECK(middleware::compile_header_rules(route_with({})).empty());
}
