#include "gateway/net/proxy_protocol.hpp"

#include <catch2/catch.hpp>

#include <string>

using gateway::net::parse_proxy_header;
using gateway::net::proxy_header;
using kind = proxy_header::kind;
using namespace std::string_view_literals;

namespace {

std::string text_of(const gateway::core::ip_address& a) {
  char buf[gateway::core::max_ip_text];
  return std::string(buf, gateway::core::format_ip(a, buf));
}

// The 16-byte fixed part of a v2 header and what follows it.
std::string v2(unsigned char ver_cmd, unsigned char family, std::string_view payload,
               std::size_t declared = std::string::npos) {
  static constexpr char sig[] = "\r\n\r\n\0\r\nQUIT\n";
  std::string s(sig, 12);
  const std::size_t len = declared == std::string::npos ? payload.size() : declared;
  s.push_back(static_cast<char>(ver_cmd));
  s.push_back(static_cast<char>(family));
  s.push_back(static_cast<char>(len >> 8));
  s.push_back(static_cast<char>(len & 0xff));
  s.append(payload);
  return s;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

// 203.0.113.7:51000 -> 10.0.0.1:443
const std::string inet_block = bytes({203, 0, 113, 7, 10, 0, 0, 1, 0xc7, 0x38, 0x01, 0xbb});
// 2001:db8::5:51000 -> 2001:db8::1:443
const std::string inet6_block = bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
                                       0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                                       0xc7, 0x38, 0x01, 0xbb});

}  // namespace

TEST_CASE("PROXY v1: TCP4 and TCP6 lines give the source address and port, HTTP bytes follow untouched",
          "[unit][net]") {
  const std::string line = "PROXY TCP4 198.51.100.22 10.0.0.1 35646 80\r\n";
  auto h = parse_proxy_header(line + "GET / HTTP/1.1\r\n");
  REQUIRE(h.what == kind::complete);
  CHECK(h.version == 1);
  CHECK(h.size == line.size());
  REQUIRE(h.has_source);
  CHECK(text_of(h.source) == "198.51.100.22");
  CHECK(h.source.v4);
  CHECK(h.source_port == 35646);

  const std::string six = "PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n";
  auto h6 = parse_proxy_header(six);
  REQUIRE(h6.what == kind::complete);
  CHECK(h6.size == six.size());
  CHECK_FALSE(h6.source.v4);
  CHECK(text_of(h6.source) == "2001:db8::7");
  CHECK(h6.source_port == 65535);

  // The longest TCP6 line there can be is 104 bytes with its CRLF.
  const std::string longest =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  CHECK(longest.size() == 104);
  CHECK(parse_proxy_header(longest).what == kind::complete);
}

TEST_CASE("PROXY v1 UNKNOWN keeps the peer: no source, the rest of the line ignored", "[unit][net]") {
  auto bare = parse_proxy_header("PROXY UNKNOWN\r\nGET");
  REQUIRE(bare.what == kind::complete);
  CHECK(bare.size == 15);
  CHECK_FALSE(bare.has_source);
  auto with_rest = parse_proxy_header("PROXY UNKNOWN ffff:: ffff:: 1 2\r\n");
  REQUIRE(with_rest.what == kind::complete);
  CHECK_FALSE(with_rest.has_source);
  CHECK(parse_proxy_header("PROXY UNKNOWNX\r\n").what == kind::invalid);
}

TEST_CASE("PROXY v1 cut short is incomplete at every length, never complete or invalid", "[unit][net]") {
  const std::string line = "PROXY TCP4 198.51.100.22 10.0.0.1 35646 80\r\n";
  for (std::size_t n = 0; n < line.size(); ++n) {
    INFO("first " << n << " bytes");
    CHECK(parse_proxy_header(std::string_view(line).substr(0, n)).what == kind::incomplete);
  }
}

TEST_CASE("PROXY v1 longer than 107 bytes, or not ended by CRLF, is refused", "[unit][net]") {
  // 107 bytes with the CRLF is the most; UNKNOWN lets us reach it exactly.
  std::string at_limit = "PROXY UNKNOWN " + std::string(107 - 14 - 2, 'x') + "\r\n";
  REQUIRE(at_limit.size() == 107);
  CHECK(parse_proxy_header(at_limit).what == kind::complete);
  std::string over = "PROXY UNKNOWN " + std::string(107 - 14 - 1, 'x') + "\r\n";
  REQUIRE(over.size() == 108);
  auto h = parse_proxy_header(over);
  CHECK(h.what == kind::invalid);
  // Without any line end, 106 bytes may still become a header; 107 cannot.
  std::string endless(107, 'x');
  endless.replace(0, 6, "PROXY ");
  CHECK(parse_proxy_header(std::string_view(endless).substr(0, 106)).what == kind::incomplete);
  CHECK(parse_proxy_header(endless).what == kind::invalid);

  CHECK(parse_proxy_header("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n").what == kind::invalid);      // bare LF
  CHECK(parse_proxy_header("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n").what == kind::invalid);  // CR inside
}

TEST_CASE("PROXY v1 fields are strict: single spaces, the protocol's family, ports 0..65535", "[unit][net]") {
  for (const char* bad : {
           "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",            // a field missing
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",        // one too many
           "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",         // two spaces
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",         // trailing space
           "PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",      // IPv6 in TCP4
           "PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n",      // IPv4 in TCP6
           "PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",        // not an address
           "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",         // leading zero
           "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",      // port too large
           "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",        // leading zero in a port
           "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",         // sign
           "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",          // not TCP
           "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",          // case matters
           "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",         // a tab
           "PROXY \r\n",
       }) {
    INFO(bad);
    CHECK(parse_proxy_header(bad).what == kind::invalid);
  }
  auto zero = parse_proxy_header("PROXY TCP4 0.0.0.0 5.6.7.8 0 0\r\n");
  CHECK(zero.what == kind::complete);
}

TEST_CASE("a connection that does not start with a PROXY signature is refused at its first byte", "[unit][net]") {
  auto http = parse_proxy_header("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(http.what == kind::invalid);
  CHECK(http.version == 0);
  CHECK(parse_proxy_header("G").what == kind::invalid);
  CHECK(parse_proxy_header("PROXZ").what == kind::invalid);
  CHECK(parse_proxy_header("proxy TCP4").what == kind::invalid);
  CHECK(parse_proxy_header("\r\n\r\n\0\r\nQUIX"sv).what == kind::invalid);  // v2 signature, one byte wrong
  CHECK(parse_proxy_header("\r\nGET").what == kind::invalid);
  CHECK(parse_proxy_header("").what == kind::incomplete);
}

TEST_CASE("PROXY v2: PROXY over TCP/IPv4 and TCP/IPv6 gives the source address and port", "[unit][net]") {
  const std::string four = v2(0x21, 0x11, inet_block);
  auto h = parse_proxy_header(four + "GET / HTTP/1.1\r\n");
  REQUIRE(h.what == kind::complete);
  CHECK(h.version == 2);
  CHECK(h.size == 28);
  REQUIRE(h.has_source);
  CHECK(text_of(h.source) == "203.0.113.7");
  CHECK(h.source_port == 51000);

  auto h6 = parse_proxy_header(v2(0x21, 0x21, inet6_block));
  REQUIRE(h6.what == kind::complete);
  CHECK(h6.size == 52);
  CHECK_FALSE(h6.source.v4);
  CHECK(text_of(h6.source) == "2001:db8::5");
  CHECK(h6.source_port == 51000);

  // An IPv4-mapped IPv6 source is the IPv4 client it maps.
  std::string mapped = inet6_block;
  mapped.replace(0, 16, bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 9}));
  auto hm = parse_proxy_header(v2(0x21, 0x21, mapped));
  REQUIRE(hm.what == kind::complete);
  CHECK(hm.source.v4);
  CHECK(text_of(hm.source) == "192.0.2.9");
}

TEST_CASE("PROXY v2: LOCAL and AF_UNSPEC keep the peer, TLVs are skipped", "[unit][net]") {
  auto local = parse_proxy_header(v2(0x20, 0x00, ""));
  REQUIRE(local.what == kind::complete);
  CHECK(local.size == 16);
  CHECK_FALSE(local.has_source);
  // LOCAL ignores whatever address block it has, of any family.
  auto local_addr = parse_proxy_header(v2(0x20, 0x11, inet_block));
  REQUIRE(local_addr.what == kind::complete);
  CHECK(local_addr.size == 28);
  CHECK_FALSE(local_addr.has_source);
  auto unspec = parse_proxy_header(v2(0x21, 0x00, bytes({1, 2, 3})));
  REQUIRE(unspec.what == kind::complete);
  CHECK_FALSE(unspec.has_source);

  // An ALPN TLV ("h2") and a NOOP padding TLV after the addresses.
  const std::string tlvs = bytes({0x01, 0x00, 0x02, 'h', '2', 0x04, 0x00, 0x03, 0, 0, 0});
  auto with_tlvs = parse_proxy_header(v2(0x21, 0x11, inet_block + tlvs) + "GET");
  REQUIRE(with_tlvs.what == kind::complete);
  CHECK(with_tlvs.size == 16 + 12 + tlvs.size());
  CHECK(text_of(with_tlvs.source) == "203.0.113.7");
  // A TLV that claims more than the header has, or is cut in its own head.
  CHECK(parse_proxy_header(v2(0x21, 0x11, inet_block + bytes({0x01, 0x00, 0x05, 'h'}))).what == kind::invalid);
  CHECK(parse_proxy_header(v2(0x21, 0x11, inet_block + bytes({0x01, 0x00}))).what == kind::invalid);
}

TEST_CASE("PROXY v2 cut short is incomplete at every length", "[unit][net]") {
  const std::string whole = v2(0x21, 0x21, inet6_block + bytes({0x04, 0x00, 0x01, 0}));
  for (std::size_t n = 0; n < whole.size(); ++n) {
    INFO("first " << n << " bytes");
    CHECK(parse_proxy_header(std::string_view(whole).substr(0, n)).what == kind::incomplete);
  }
  CHECK(parse_proxy_header(whole).what == kind::complete);
}

TEST_CASE("PROXY v2 with a wrong version, command, family or length is refused", "[unit][net]") {
  CHECK(parse_proxy_header(v2(0x11, 0x11, inet_block)).what == kind::invalid);  // version 1 in a v2 header
  CHECK(parse_proxy_header(v2(0x31, 0x11, inet_block)).what == kind::invalid);  // version 3
  CHECK(parse_proxy_header(v2(0x22, 0x11, inet_block)).what == kind::invalid);  // command 2
  CHECK(parse_proxy_header(v2(0x21, 0x12, inet_block)).what == kind::invalid);  // IPv4 over DGRAM
  CHECK(parse_proxy_header(v2(0x21, 0x31, std::string(216, 'u'))).what == kind::invalid);  // AF_UNIX
  CHECK(parse_proxy_header(v2(0x21, 0x11, inet_block.substr(0, 11))).what == kind::invalid);  // short block
  CHECK(parse_proxy_header(v2(0x21, 0x21, inet6_block.substr(0, 35))).what == kind::invalid);
  // Oversize: refused from the fixed part alone, before its bytes arrive.
  auto big = parse_proxy_header(v2(0x21, 0x11, "", 1025));
  CHECK(big.what == kind::invalid);
  CHECK(parse_proxy_header(v2(0x21, 0x11, "", 0xffff)).what == kind::invalid);
  // 1024 is the most accepted.
  const std::string padded = inet_block + bytes({0x04, 0x03, 0xf1}) + std::string(1009, '\0');
  REQUIRE(padded.size() == 1024);
  CHECK(parse_proxy_header(v2(0x21, 0x11, padded)).what == kind::complete);
}
