#include "gateway/middleware/log_ring.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gateway/json/reader.hpp"

using gateway::http::header_field;
using gateway::middleware::log_entry_view;
using gateway::middleware::log_ring;
using gateway::middleware::log_ring_options;
using namespace std::chrono_literals;

namespace {

gateway::json::value render(const log_ring& ring, std::size_t limit = 1'000'000) {
  std::string out;
  ring.render_json(out, limit);
  auto r = gateway::json::parse(out);
  INFO(out.substr(0, 2000));
  if (!r) FAIL("JSON parse error: " << r.error().message << " at " << r.error().offset);
  auto v = std::move(r).value();
  REQUIRE(v.is_array());
  return v;
}

log_entry_view entry(std::string_view request_id, std::string_view path = "/api/x") {
  log_entry_view e;
  e.timestamp = std::chrono::sys_days{std::chrono::year{2024} / 2 / 29} + 23h + 59min + 59s + 123ms;
  e.method = "GET";
  e.path = path;
  e.status = 200;
  e.duration = 1234567ns;
  e.client = "10.1.2.3:40001";
  e.request_id = request_id;
  e.body = "";
  return e;
}

std::vector<std::string> ids(const gateway::json::value& arr) {
  std::vector<std::string> out;
  for (const auto& item : arr.items()) out.emplace_back(item.find("request_id")->as_string());
  return out;
}

std::string redacted_path(std::string_view target, std::size_t max = 2048) {
  std::string out;
  gateway::middleware::append_redacted_target(out, target, max);
  return out;
}

}  // namespace

TEST_CASE("log ring renders every field of an entry with the seed's names and types",
          "[unit][middleware][logging]") {
  log_ring ring;
  std::vector<header_field> headers = {
      {"Host", "example.com"}, {"accept", "*/*"}, {"X-Trace", "1"}, {"ACCEPT", "text/plain"}};
  auto e = entry("req-1", "/api/users?page=2");
  e.method = "POST";
  e.status = 201;
  e.headers = headers;
  e.body = "{\"name\":\"a\\\"b\"}";
  ring.push(e);

  std::string out;
  ring.render_json(out, 10);
  CHECK(out ==
        "[{\"timestamp\":\"2024-02-29T23:59:59.123Z\",\"method\":\"POST\",\"path\":\"/api/users?page=2\","
        "\"status_code\":201,\"duration\":1234567,\"client_ip\":\"10.1.2.3:40001\","
        "\"headers\":{\"Host\":\"example.com\",\"Accept\":\"*/*, text/plain\",\"X-Trace\":\"1\"},"
        "\"body\":\"{\\\"name\\\":\\\"a\\\\\\\"b\\\"}\",\"request_id\":\"req-1\",\"body_truncated\":false}]");
  auto v = render(ring);
  REQUIRE(v.size() == 1);
  const auto& item = v.items()[0];
  // The seed's fields first, with its types: the names /logs consumers read.
  const char* seed_fields[] = {"timestamp", "method", "path", "status_code", "duration", "client_ip", "headers", "body"};
  REQUIRE(item.members().size() >= 8);
  for (std::size_t i = 0; i < 8; ++i) CHECK(item.members()[i].key == seed_fields[i]);
  CHECK(item.find("status_code")->as_int64() == 201);
  CHECK(item.find("duration")->as_int64() == 1234567);  // Go's time.Duration: integer nanoseconds
  CHECK(item.find("headers")->is_object());
  CHECK(item.find("headers")->find("Accept")->as_string() == "*/*, text/plain");
  CHECK(item.find("body")->as_string() == e.body);
}

TEST_CASE("log ring spells header names as Go's canonical form", "[unit][middleware][logging]") {
  auto canon = [](std::string_view n) {
    std::string out;
    gateway::middleware::append_canonical_header_name(out, n);
    return out;
  };
  CHECK(canon("x-api-KEY") == "X-Api-Key");
  CHECK(canon("content-type") == "Content-Type");
  CHECK(canon("HOST") == "Host");
  CHECK(canon("x--a") == "X--A");
  CHECK(canon("x_y-1z") == "X_y-1z");
  CHECK(canon("") == "");
}

TEST_CASE("log ring timestamps are RFC 3339 UTC with milliseconds", "[unit][middleware][logging]") {
  using namespace std::chrono;
  auto fmt = [](system_clock::time_point t) {
    std::string out;
    gateway::middleware::append_rfc3339_ms(out, t);
    return out;
  };
  CHECK(fmt(system_clock::time_point{}) == "1970-01-01T00:00:00.000Z");
  CHECK(fmt(sys_days{year{2000} / 1 / 1} + 5ms) == "2000-01-01T00:00:00.005Z");
  CHECK(fmt(sys_days{year{1999} / 12 / 31} + 23h + 59min + 59s + 999ms + 999us) == "1999-12-31T23:59:59.999Z");
  CHECK(fmt(sys_days{year{2038} / 1 / 19} + 3h + 14min + 8s) == "2038-01-19T03:14:08.000Z");
  CHECK(fmt(system_clock::time_point{} - 1ms) == "1969-12-31T23:59:59.999Z");
}

TEST_CASE("log ring keeps entries oldest first and honours the limit", "[unit][middleware][logging]") {
  log_ring ring(log_ring_options{.capacity = 10});
  for (int i = 1; i <= 5; ++i) ring.push(entry(std::to_string(i)));
  CHECK(ring.size() == 5);
  CHECK(ids(render(ring)) == std::vector<std::string>{"1", "2", "3", "4", "5"});
  CHECK(ids(render(ring, 5)) == std::vector<std::string>{"1", "2", "3", "4", "5"});
  CHECK(ids(render(ring, 2)) == std::vector<std::string>{"4", "5"});
  CHECK(ids(render(ring, 1)) == std::vector<std::string>{"5"});
  std::string out = "x";
  ring.render_json(out, 0);
  CHECK(out == "x[]");
}

TEST_CASE("log ring overwrites the oldest entries at capacity", "[unit][middleware][logging]") {
  log_ring ring(log_ring_options{.capacity = 3});
  for (int i = 1; i <= 7; ++i) ring.push(entry(std::to_string(i)));
  CHECK(ring.size() == 3);
  CHECK(ring.capacity() == 3);
  CHECK(ids(render(ring)) == std::vector<std::string>{"5", "6", "7"});
  CHECK(ids(render(ring, 2)) == std::vector<std::string>{"6", "7"});
  ring.push(entry("8"));
  CHECK(ids(render(ring)) == std::vector<std::string>{"6", "7", "8"});
}

TEST_CASE("log ring clear forgets every entry", "[unit][middleware][logging]") {
  log_ring ring(log_ring_options{.capacity = 4});
  for (int i = 1; i <= 6; ++i) ring.push(entry(std::to_string(i)));
  ring.clear();
  CHECK(ring.size() == 0);
  CHECK(render(ring).size() == 0);
  ring.clear();  // twice is fine
  ring.push(entry("a"));
  ring.push(entry("b"));
  CHECK(ring.size() == 2);
  CHECK(ids(render(ring)) == std::vector<std::string>{"a", "b"});
  CHECK_THROWS_AS(log_ring(log_ring_options{.capacity = 0}), std::invalid_argument);
}

TEST_CASE("log ring redacts credential headers whatever their case", "[unit][middleware][logging]") {
  log_ring ring;
  std::vector<header_field> headers = {
      {"authorization", "Bearer secret-1"},   {"PROXY-AUTHORIZATION", "Basic secret-2"},
      {"X-Api-Key", "secret-3"},              {"cOOKIE", "session=secret-4"},
      {"Set-Cookie", "id=secret-5"},          {"X-API-KEY", "secret-6"},
      {"Authorization-Hint", "visible-1"},    {"X-Api-Key-Id", "visible-2"},
      {"Host", "visible-3"},
  };
  auto e = entry("r");
  e.headers = headers;
  ring.push(e);
  std::string out;
  ring.render_json(out, 1);
  CHECK(out.find("secret") == std::string::npos);
  auto v = render(ring);
  const auto* h = v.items()[0].find("headers");
  REQUIRE(h->size() == 8);  // X-Api-Key twice: one member
  CHECK(h->find("Authorization")->as_string() == "[REDACTED]");
  CHECK(h->find("Proxy-Authorization")->as_string() == "[REDACTED]");
  CHECK(h->find("X-Api-Key")->as_string() == "[REDACTED], [REDACTED]");
  CHECK(h->find("Cookie")->as_string() == "[REDACTED]");
  CHECK(h->find("Set-Cookie")->as_string() == "[REDACTED]");
  CHECK(h->find("Authorization-Hint")->as_string() == "visible-1");
  CHECK(h->find("X-Api-Key-Id")->as_string() == "visible-2");
  CHECK(h->find("Host")->as_string() == "visible-3");
}

TEST_CASE("log ring redacts api_key query values wherever they are", "[unit][middleware][logging]") {
  CHECK(redacted_path("/a?api_key=s3cret") == "/a?api_key=[REDACTED]");
  CHECK(redacted_path("/a?api_key=s3cret&b=2") == "/a?api_key=[REDACTED]&b=2");
  CHECK(redacted_path("/a?b=2&api_key=s3cret&c=3") == "/a?b=2&api_key=[REDACTED]&c=3");
  CHECK(redacted_path("/a?b=2&api_key=s3cret") == "/a?b=2&api_key=[REDACTED]");
  CHECK(redacted_path("/a?api_key=one&api_key=two") == "/a?api_key=[REDACTED]&api_key=[REDACTED]");
  CHECK(redacted_path("/a?api_key=") == "/a?api_key=[REDACTED]");
  CHECK(redacted_path("/a?api_key=x=y&z") == "/a?api_key=[REDACTED]&z");
  CHECK(redacted_path("/a?b=1;api_key=s3cret") == "/a?b=1;api_key=[REDACTED]");
  CHECK(redacted_path("/a?API_Key=s3cret") == "/a?API_Key=[REDACTED]");
  CHECK(redacted_path("/a?api%5Fkey=s3cret") == "/a?api%5Fkey=[REDACTED]");
  CHECK(redacted_path("/a?%61pi_key=s3cret") == "/a?%61pi_key=[REDACTED]");
  // Look-alikes stay.
  CHECK(redacted_path("/a?xapi_key=v&api_keys=v&api_key_id=v&api-key=v&apikey=v") ==
        "/a?xapi_key=v&api_keys=v&api_key_id=v&api-key=v&apikey=v");
  CHECK(redacted_path("/a?b=api_key=v") == "/a?b=api_key=v");
  CHECK(redacted_path("/a?api_key") == "/a?api_key");
  CHECK(redacted_path("/a?api%5key=v&api%=v&%") == "/a?api%5key=v&api%=v&%");
  CHECK(redacted_path("/api_key=v/x") == "/api_key=v/x");  // no query at all
  CHECK(redacted_path("/a?") == "/a?");
  CHECK(redacted_path("/a?&&api_key=v&") == "/a?&&api_key=[REDACTED]&");
  // A query with neither '_' nor '%' is copied as it is, and cut the same way.
  CHECK(redacted_path("/a?b=1&c=2;d") == "/a?b=1&c=2;d");
  CHECK(redacted_path("/a?b=1&c=2", 5) == "/a?b=");
  CHECK(redacted_path("/a?x=1&API%5fKEY=v") == "/a?x=1&API%5fKEY=[REDACTED]");
  // Cutting happens after redaction: no part of the secret survives.
  CHECK(redacted_path("/a?api_key=supersecretvalue", 15) == "/a?api_key=[RED");
  CHECK(redacted_path("/abcdef", 3) == "/ab");

  log_ring ring(log_ring_options{.max_path = 40});
  ring.push(entry("r", "/api/orders?page=1&api_key=abcdefghijklmnopqrstuvwxyz0123456789&x=1"));
  auto v = render(ring);
  CHECK(v.items()[0].find("path")->as_string() == "/api/orders?page=1&api_key=[REDACTED]&x=");
}

TEST_CASE("log ring cuts bodies at 4096 bytes and says so", "[unit][middleware][logging]") {
  log_ring ring;
  const std::string exact(4096, 'a');
  const std::string longer = std::string(4096, 'b') + "TAIL";
  auto e1 = entry("exact");
  e1.body = exact;
  ring.push(e1);
  auto e2 = entry("long");
  e2.body = longer;
  ring.push(e2);
  auto v = render(ring);
  REQUIRE(v.size() == 2);
  CHECK(v.items()[0].find("body")->as_string() == exact);
  CHECK_FALSE(v.items()[0].find("body_truncated")->as_bool());
  CHECK(v.items()[1].find("body")->as_string() == std::string(4096, 'b'));
  CHECK(v.items()[1].find("body_truncated")->as_bool());
  // Binary bodies still render as valid JSON.
  auto e3 = entry("binary");
  const std::string bin("\x00\xff\xfe\x01\"\\", 6);
  e3.body = bin;
  ring.push(e3);
  CHECK(render(ring, 1).items()[0].find("body")->as_string() ==
        std::string("\x00\xEF\xBF\xBD\xEF\xBF\xBD\x01\"\\", 10));
}

TEST_CASE("log ring bounds the headers it copies", "[unit][middleware][logging]") {
  log_ring ring;
  std::vector<std::string> names;
  for (int i = 0; i < 100; ++i) names.push_back("X-H" + std::to_string(i));
  std::vector<header_field> many;
  for (const auto& n : names) many.push_back({n, "v"});
  auto e = entry("many");
  e.headers = many;
  ring.push(e);
  CHECK(render(ring, 1).items()[0].find("headers")->size() == 64);

  const std::string big(5000, 'v');
  std::vector<header_field> large = {{"X-Big", big}, {"X-Big2", big}, {"X-Big3", big}, {"X-Big4", big},
                                     {"X-Big5", big}};
  auto e2 = entry("large");
  e2.headers = large;
  ring.push(e2);
  const auto rendered = render(ring, 1);
  auto h = rendered.items()[0].find("headers")->members();
  // Each value cut at 1 KiB; the 4 KiB per-entry budget admits three of them.
  REQUIRE(h.size() == 3);
  for (const auto& m : h) CHECK(m.value.as_string() == std::string(1024, 'v'));

  const std::string long_id(1000, 'i');
  const std::string long_method(1000, 'M');
  auto e3 = entry(long_id);
  e3.method = long_method;
  ring.push(e3);
  auto last = render(ring, 1).items()[0];
  CHECK(last.find("request_id")->as_string().size() == 128);
  CHECK(last.find("method")->as_string().size() == 128);
}

TEST_CASE("log ring reuses slot storage once it has wrapped", "[unit][middleware][logging]") {
  log_ring ring(log_ring_options{.capacity = 100});
  std::vector<header_field> headers = {{"Host", "example.com"}, {"User-Agent", "test/1.0"},
                                       {"Authorization", "Bearer x"}};
  const std::string body(3000, 'b');
  auto push_round = [&] {
    for (int i = 0; i < 100; ++i) {
      const std::string id = "id-" + std::to_string(i);
      const std::string path = "/api/items/" + std::to_string(i) + "?api_key=k&q=1";
      auto e = entry(id, path);
      e.headers = headers;
      e.body = std::string_view(body).substr(0, 2000 + static_cast<std::size_t>(i) * 10);
      ring.push(e);
    }
  };
  push_round();
  push_round();
  const std::size_t bytes = ring.storage_bytes();
  for (int r = 0; r < 5; ++r) push_round();
  CHECK(ring.storage_bytes() == bytes);
  // And the bound holds whatever is pushed: each slot below twice its caps.
  std::vector<header_field> huge;
  const std::string v(2000, 'x');
  for (int i = 0; i < 200; ++i) huge.push_back({"X-Header-Name-That-Is-Long", v});
  const std::string big_body(100000, 'z');
  const std::string big_path = "/" + std::string(100000, 'p');
  const std::string long_id(500, 'r');
  for (int i = 0; i < 300; ++i) {
    auto e = entry(long_id, big_path);
    e.headers = huge;
    e.body = big_body;
    ring.push(e);
  }
  const log_ring_options o;
  const std::size_t per_slot_cap = o.max_body + o.max_header_bytes + o.max_path + 3 * o.max_field + 64 * 8;
  CHECK(ring.storage_bytes() <= 100 * (2 * per_slot_cap + 1024));
}

TEST_CASE("log ring slot refilled with a smaller entry shows only the new one", "[unit][middleware][logging]") {
  log_ring ring(log_ring_options{.capacity = 1});
  const std::string v(900, 'v');
  std::vector<header_field> big = {{"X-A", v}, {"x-a", v}, {"X-Api-Key", "secret"}, {"Cookie", "c=1"}};
  auto e1 = entry("first", "/long/path?api_key=abc&x=1");
  e1.headers = big;
  e1.body = std::string_view(v).substr(0, 700);
  ring.push(e1);
  auto first = render(ring).items()[0];
  CHECK(first.find("path")->as_string() == "/long/path?api_key=[REDACTED]&x=1");
  CHECK(first.find("headers")->find("X-A")->as_string() == v + ", " + v);
  CHECK(first.find("headers")->find("X-Api-Key")->as_string() == "[REDACTED]");
  CHECK(first.find("headers")->find("Cookie")->as_string() == "[REDACTED]");
  CHECK(first.find("body")->as_string() == std::string(700, 'v'));

  std::vector<header_field> small = {{"host", "h"}};
  auto e2 = entry("second", "/s");
  e2.method = "PUT";
  e2.client = "[::1]:9";
  e2.headers = small;
  e2.body = "b";
  ring.push(e2);
  auto v2 = render(ring);
  REQUIRE(v2.size() == 1);
  const auto second = v2.items()[0];
  CHECK(second.find("method")->as_string() == "PUT");
  CHECK(second.find("client_ip")->as_string() == "[::1]:9");
  CHECK(second.find("request_id")->as_string() == "second");
  CHECK(second.find("path")->as_string() == "/s");
  CHECK(second.find("body")->as_string() == "b");
  REQUIRE(second.find("headers")->size() == 1);
  CHECK(second.find("headers")->find("Host")->as_string() == "h");
}

TEST_CASE("log ring takes concurrent pushes from four threads", "[unit][middleware][logging]") {
  constexpr int per_thread = 2000;
  auto run = [&](std::size_t capacity) {
    log_ring ring(log_ring_options{.capacity = capacity});
    std::atomic<bool> stop{false};
    std::atomic<int> bad_renders{0};
    std::thread reader([&] {
      std::string out;
      do {
        out.clear();
        ring.render_json(out, 500);
        if (!gateway::json::parse(out)) bad_renders.fetch_add(1);
        (void)ring.size();
      } while (!stop.load());
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&ring, t] {
        std::vector<header_field> headers = {{"X-Thread", "t"}, {"Cookie", "c"}};
        for (int i = 0; i < per_thread; ++i) {
          std::string id = std::to_string(t) + ":" + std::to_string(i);
          auto e = entry(id, "/p?api_key=secret");
          e.headers = headers;
          const std::string body(static_cast<std::size_t>(i % 100), 'b');
          e.body = body;
          ring.push(e);
        }
      });
    for (auto& th : threads) th.join();
    stop = true;
    reader.join();
    CHECK(bad_renders.load() == 0);

    auto v = render(ring);
    const std::size_t expected = std::min<std::size_t>(capacity, 4 * per_thread);
    CHECK(ring.size() == expected);
    CHECK(v.size() == expected);
    // Each thread's entries appear in the order it pushed them.
    std::vector<int> last(4, -1);
    for (const auto& item : v.items()) {
      std::string id(item.find("request_id")->as_string());
      const int t = std::stoi(id.substr(0, id.find(':')));
      const int i = std::stoi(id.substr(id.find(':') + 1));
      REQUIRE(t >= 0);
      REQUIRE(t < 4);
      CHECK(i > last[static_cast<std::size_t>(t)]);
      last[static_cast<std::size_t>(t)] = i;
      CHECK(item.find("path")->as_string() == "/p?api_key=[REDACTED]");
      CHECK(item.find("body")->as_string().size() == static_cast<std::size_t>(i % 100));
    }
    if (capacity >= 4 * per_thread)
      for (int t = 0; t < 4; ++t) CHECK(last[static_cast<std::size_t>(t)] == per_thread - 1);
  };
  SECTION("ring large enough for everything") { run(10000); }
  SECTION("ring that wraps many times") { run(100); }
  SECTION("ring smaller than the number of pushers") { run(2); }
}

TEST_CASE("log ring render stops at max_bytes, leaving out the oldest entries whole and counting them",
          "[unit][middleware][logging]") {
  log_ring ring(log_ring_options{.capacity = 100});
  const std::string body(1000, '\x01');  // 6,000 bytes once escaped as \u0001
  std::vector<std::string> names;
  for (int i = 0; i < 50; ++i) names.push_back("id-" + std::to_string(i));
  for (const auto& id : names) {
    auto e = entry(id);
    e.body = body;
    ring.push(e);
  }
  std::string all;
  const auto full = ring.render_json(all, 1000);
  CHECK(full.entries == 50);
  CHECK(full.omitted == 0);
  const std::size_t per_entry = all.size() / 50;
  REQUIRE(per_entry > 6000);

  // Room for about ten entries: the newest ten, oldest first, whole.
  const std::size_t cap = per_entry * 10 + per_entry / 2;
  std::string out = "prefix";
  const auto cut = ring.render_json(out, 1000, cap);
  REQUIRE(out.rfind("prefix", 0) == 0);
  out.erase(0, 6);
  CHECK(out.size() <= cap);
  CHECK(cut.entries == 10);
  CHECK(cut.omitted == 40);
  auto parsed = gateway::json::parse(out);
  REQUIRE(parsed);
  CHECK(ids(parsed.value()) == std::vector<std::string>(names.end() - 10, names.end()));
  // The same entries, byte for byte, as the tail of the uncut rendering.
  CHECK(all.substr(all.size() - out.size() + 1) == out.substr(1));

  // With a limit the cap counts only the entries asked for.
  std::string limited;
  const auto few = ring.render_json(limited, 3, cap);
  CHECK(few.entries == 3);
  CHECK(few.omitted == 0);
  CHECK(ids(gateway::json::parse(limited).value()) == std::vector<std::string>(names.end() - 3, names.end()));

  // Too small for one entry: an empty array, everything counted.
  std::string none;
  const auto nothing = ring.render_json(none, 1000, per_entry / 2);
  CHECK(none == "[]");
  CHECK(nothing.entries == 0);
  CHECK(nothing.omitted == 50);

  // Exactly the bytes of the whole array: nothing left out.
  std::string exact;
  CHECK(ring.render_json(exact, 1000, all.size()).omitted == 0);
  CHECK(exact == all);
  std::string one_short;
  CHECK(ring.render_json(one_short, 1000, all.size() - 1).omitted == 1);
}
