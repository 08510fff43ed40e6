#include "gateway/http/forwarded_for.hpp"

#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>
#include <utility>

using namespace gateway;

namespace {

struct walk {
  core::arena mem{4096};
  core::cidr_set trusted;

  explicit walk(std::initializer_list<const char*> ranges) {
    for (const char* r : ranges) {
      std::string_view err;
      auto c = core::parse_cidr(r, err);
      REQUIRE(c);
      trusted.add(*c);
    }
  }

  // The client the walk picks for a request from `peer` with these fields;
  // "peer" when it keeps the peer.
  std::string client(const char* peer, std::initializer_list<std::pair<const char*, const char*>> fields) {
    http::header_list h(mem);
    for (const auto& [n, v] : fields) h.add(n, v);
    auto p = core::parse_ip(peer);
    REQUIRE(p);
    auto r = http::client_from_forwarded_for(h, *p, trusted);
    if (!r.from_header) {
      CHECK(r.address == *p);
      return "peer";
    }
    char buf[core::max_ip_text];
    return std::string(buf, core::format_ip(r.address, buf));
  }
};

}  // namespace

TEST_CASE("X-Forwarded-For is ignored unless the peer is a trusted proxy", "[unit][http]") {
  walk w{"10.0.0.0/8"};
  CHECK(w.client("192.0.2.1", {{"X-Forwarded-For", "198.51.100.7"}}) == "peer");
  CHECK(w.client("10.1.1.1", {{"X-Forwarded-For", "198.51.100.7"}}) == "198.51.100.7");
  CHECK(w.client("10.1.1.1", {}) == "peer");
  CHECK(w.client("10.1.1.1", {{"X-Real-IP", "198.51.100.7"}}) == "peer");
  walk none{};
  CHECK(none.client("10.1.1.1", {{"X-Forwarded-For", "198.51.100.7"}}) == "peer");
}

TEST_CASE("the X-Forwarded-For walk takes the right-most untrusted hop, skipping trusted ones", "[unit][http]") {
  walk w{"10.0.0.0/8", "2001:db8:1::/48"};
  // A client could have written the left part itself: only what trusted
  // hops appended counts.
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "1.1.1.1, 203.0.113.9, 10.0.0.2, 10.0.0.3"}}) == "203.0.113.9");
  CHECK(w.client("10.0.0.1", {{"x-forwarded-for", "203.0.113.9,10.0.0.2"}}) == "203.0.113.9");
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "2001:db8:2::9, 2001:db8:1::1"}}) == "2001:db8:2::9");
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "2001:DB8:2:0::9"}}) == "2001:db8:2::9");  // canonical text
  // Every hop trusted: the left-most is the best we know.
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "10.9.9.9, 10.0.0.2"}}) == "10.9.9.9");
  // Several fields are one list, in order.
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "203.0.113.1"}, {"Accept", "*/*"},
                              {"X-Forwarded-For", "10.0.0.5"}}) == "203.0.113.1");
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "10.0.0.5"}, {"X-Forwarded-For", "203.0.113.2, 10.0.0.6"}}) ==
        "203.0.113.2");
  // Whitespace and empty elements (RFC 9110 section 5.6.1).
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", " ,203.0.113.3 ,\t, 10.0.0.7 ,"}}) == "203.0.113.3");
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", ""}}) == "peer");
  // A trusted peer seen through a dual-stack socket.
  CHECK(w.client("::ffff:10.0.0.1", {{"X-Forwarded-For", "203.0.113.4"}}) == "203.0.113.4");
}

TEST_CASE("a malformed X-Forwarded-For entry stops the walk at the last good hop", "[unit][http]") {
  walk w{"10.0.0.0/8"};
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "203.0.113.9, garbage"}}) == "peer");
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "203.0.113.9, garbage, 10.0.0.2"}}) == "10.0.0.2");
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "203.0.113.9:4711"}}) == "peer");  // no ports
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "[2001:db8::1]"}}) == "peer");     // no brackets
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "unknown, 10.0.0.3"}}) == "10.0.0.3");
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "203.0.113.9 10.0.0.2"}}) == "peer");
  // An untrusted hop ends the walk before a malformed entry to its left matters.
  CHECK(w.client("10.0.0.1", {{"X-Forwarded-For", "garbage, 203.0.113.9"}}) == "203.0.113.9");
}
