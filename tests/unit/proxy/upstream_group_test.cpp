// Upstream groups without sockets: the member list, the balancer (weights,
// power of two choices, the panic rule), the ejection schedule and the
// retry budget, on an injected clock.
#include "gateway/proxy/upstream_group.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <string>
#include <vector>

#include "gateway/core/backend_list.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {
auto all_usable = [](std::size_t) { return true; };
auto no_load = [](std::size_t) { return 0; };
const proxy::steady::time_point t0 = proxy::steady::time_point{} + 1000s;
}  // namespace

TEST_CASE("a backend list gives members with weights, and names the bad item", "[unit][proxy]") {
  std::vector<core::backend_member> m;
  std::string err;
  REQUIRE(core::parse_backend_list("http://127.0.0.1:1, http://127.0.0.1:2;weight=3 ,http://h:3", m, err));
  REQUIRE(m.size() == 3);
  CHECK(m[0].url == "http://127.0.0.1:1");
  CHECK(m[0].weight == 1);
  CHECK(m[1].url == "http://127.0.0.1:2");
  CHECK(m[1].weight == 3);
  CHECK(m[2].url == "http://h:3");
  REQUIRE(core::parse_backend_list("https://api.example.com,http://127.0.0.1:2", m, err));
  CHECK(m[0].url == "https://api.example.com");
  for (const char* bad : {"", "http://a:1,", "http://a:1,,http://b:1", "http://a:1;weight=0", "http://a:1;weight=1001",
                          "http://a:1;weight=x", "http://a:1;w=2", "ftp://a:1", "https://", "http://a:1,http://a:1"}) {
    INFO(bad);
    CHECK_FALSE(core::parse_backend_list(bad, m, err));
    CHECK_FALSE(err.empty());
  }
  std::string many;
  for (int i = 0; i < 33; ++i) many += (i ? "," : "") + std::string("http://127.0.0.1:") + std::to_string(i + 1);
  CHECK_FALSE(core::parse_backend_list(many, m, err));
  CHECK(err.find("more than 32") != std::string::npos);
}

TEST_CASE("round robin follows the weights exactly and spreads a heavy member's turns", "[unit][proxy]") {
  proxy::balancer b(proxy::balance_kind::round_robin, {3, 1, 1});
  std::array<int, 3> count{};
  int longest_run = 0, run = 0;
  std::size_t last = 99;
  for (int i = 0; i < 500; ++i) {
    const std::size_t p = b.pick(all_usable, no_load);
    ++count[p];
    run = p == last ? run + 1 : 1;
    longest_run = std::max(longest_run, run);
    last = p;
  }
  CHECK(count[0] == 300);
  CHECK(count[1] == 100);
  CHECK(count[2] == 100);
  CHECK(longest_run <= 2);  // smooth: 3 of 5 turns, never all three together
  CHECK(b.panics() == 0);
}

TEST_CASE("round robin skips members that are not usable, and a retry never lands on the member that failed",
          "[unit][proxy]") {
  proxy::balancer b(proxy::balance_kind::round_robin, {1, 1, 1});
  std::array<int, 3> count{};
  for (int i = 0; i < 300; ++i) ++count[b.pick([](std::size_t m) { return m != 1; }, no_load)];
  CHECK(count[0] == 150);
  CHECK(count[1] == 0);
  CHECK(count[2] == 150);
  for (int i = 0; i < 50; ++i) CHECK(b.pick(all_usable, no_load, 2) != 2);
  // One member only: it is the answer, excluded or not.
  proxy::balancer one(proxy::balance_kind::round_robin, {1});
  CHECK(one.pick(all_usable, no_load, 0) == 0);
}

TEST_CASE("panic: when no member is usable, traffic goes to all of them", "[unit][proxy]") {
  for (auto kind : {proxy::balance_kind::round_robin, proxy::balance_kind::least_request}) {
    proxy::balancer b(kind, {1, 1, 1});
    std::array<int, 3> count{};
    for (int i = 0; i < 3000; ++i) ++count[b.pick([](std::size_t) { return false; }, no_load)];
    for (int c : count) CHECK(c > 700);
    CHECK(b.panics() == 3000);
    // A retry in panic still avoids the member that failed.
    for (int i = 0; i < 50; ++i) CHECK(b.pick([](std::size_t) { return false; }, no_load, 0) != 0);
  }
}

TEST_CASE("least request picks the less loaded of two members drawn by weight", "[unit][proxy]") {
  proxy::balancer b(proxy::balance_kind::least_request, {1, 1, 1}, 42);
  std::array<std::int64_t, 3> load{100, 0, 0};
  std::array<int, 3> count{};
  for (int i = 0; i < 3000; ++i) ++count[b.pick(all_usable, [&](std::size_t m) { return load[m]; })];
  CHECK(count[0] < 30);  // only when four draws in a row found the same member
  CHECK(count[1] > 1300);
  CHECK(count[2] > 1300);

  // Idle members: chosen in proportion to their weights.
  proxy::balancer w(proxy::balance_kind::least_request, {4, 1}, 7);
  std::array<int, 2> wc{};
  for (int i = 0; i < 10000; ++i) ++wc[w.pick(all_usable, no_load)];
  CHECK(wc[0] > 7600);
  CHECK(wc[0] < 8400);

  // Load per weight: weight 4 with 3 in flight beats weight 1 with 1.
  std::array<std::int64_t, 2> l2{3, 1};
  for (int i = 0; i < 100; ++i) CHECK(w.pick(all_usable, [&](std::size_t m) { return l2[m]; }) == 0);
}

TEST_CASE("ejection lasts eject_base, doubles for each one that follows, up to eject_max", "[unit][proxy]") {
  proxy::health_policy p{5, 1s, 30s};
  CHECK(proxy::ejection_interval(p, 0) == 1s);
  CHECK(proxy::ejection_interval(p, 1) == 2s);
  CHECK(proxy::ejection_interval(p, 4) == 16s);
  CHECK(proxy::ejection_interval(p, 5) == 30s);
  CHECK(proxy::ejection_interval(p, 1000) == 30s);

  proxy::member_state m("/api/", "http://127.0.0.1:1", 1);
  auto now = t0;
  for (int i = 0; i < 4; ++i) CHECK_FALSE(m.record_failure(now, p, true));
  CHECK(m.available(now));
  CHECK(m.record_failure(now, p, true));  // the fifth in a row
  CHECK_FALSE(m.available(now));
  CHECK_FALSE(m.available(now + 999ms));
  CHECK(m.available(now + 1s));  // readmitted
  // Failing again at once: the next ejection lasts 2 s.
  now += 1s;
  for (int i = 0; i < 5; ++i) m.record_failure(now, p, true);
  CHECK_FALSE(m.available(now + 1999ms));
  CHECK(m.available(now + 2s));
  // A success in between ends the run of failures.
  now += 2s;
  for (int i = 0; i < 4; ++i) m.record_failure(now, p, true);
  m.record_success(now, p);
  CHECK_FALSE(m.record_failure(now, p, true));
  CHECK(m.available(now));
  // Healthy for eject_max after readmission: the schedule starts over at 1 s.
  now += 31s;
  m.record_success(now, p);
  for (int i = 0; i < 5; ++i) m.record_failure(now, p, true);
  CHECK_FALSE(m.available(now + 999ms));
  CHECK(m.available(now + 1s));
  CHECK(m.ejections.load() == 3);
  CHECK(m.errors.load() == 4 + 1 + 5 + 5 + 5);
}

TEST_CASE("the last available member is never ejected, and eject_after 0 turns ejection off", "[unit][proxy]") {
  proxy::health_policy p{3, 1s, 30s};
  proxy::member_state m("/api/", "http://127.0.0.1:1", 1);
  for (int i = 0; i < 10; ++i) CHECK_FALSE(m.record_failure(t0, p, false));
  CHECK(m.available(t0));
  // Once others are back, the very next failure ejects it.
  CHECK(m.record_failure(t0, p, true));
  CHECK_FALSE(m.available(t0));

  proxy::health_policy off{0, 1s, 30s};
  proxy::member_state n("/api/", "http://127.0.0.1:2", 1);
  for (int i = 0; i < 100; ++i) CHECK_FALSE(n.record_failure(t0, off, true));
  CHECK(n.available(t0));
  n.set_down(true);
  CHECK_FALSE(n.available(t0));
}

TEST_CASE("the retry budget allows 20 percent of a sliding second's requests, at least the floor", "[unit][proxy]") {
  proxy::retry_budget b(20, 3);
  auto now = t0;
  // A quiet route: the floor.
  CHECK(b.try_retry(now));
  CHECK(b.try_retry(now));
  CHECK(b.try_retry(now));
  CHECK_FALSE(b.try_retry(now));
  // 100 requests over the next second: 20 retries in all.
  now += 1s;
  for (int i = 0; i < 100; ++i) b.on_request(now + std::chrono::milliseconds(i * 5));
  now += 500ms;
  int allowed = 0;
  for (int i = 0; i < 50; ++i) allowed += b.try_retry(now) ? 1 : 0;
  CHECK(allowed == 20);
  // A second later the window holds none of them.
  now += 1s;
  CHECK(b.try_retry(now));
  for (int i = 0; i < 10; ++i) b.on_request(now);
  CHECK(b.try_retry(now));
  CHECK(b.try_retry(now));
  CHECK_FALSE(b.try_retry(now));  // 3 of 10 is the floor; 4 would be 40 %

  proxy::retry_budget off(0, 3);
  off.on_request(t0);
  CHECK_FALSE(off.try_retry(t0));
}
