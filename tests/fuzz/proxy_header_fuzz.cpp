// libFuzzer target: the PROXY protocol header parser (net::parse_proxy_header),
// which reads the first bytes of every connection with --proxy-protocol.
//
// The connection parses again after each read, so the answer must not depend
// on how the bytes arrived: a complete header stays the same header whatever
// follows it, an invalid one stays invalid, and an incomplete one is a
// prefix that is still below the size limit. Checked on the input, on a
// prefix cut at a point chosen by the input, and on the input with bytes
// appended.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/net/proxy_protocol.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using gateway::net::parse_proxy_header;
using gateway::net::proxy_header;
using kind = proxy_header::kind;

bool same(const proxy_header& a, const proxy_header& b) {
  return a.what == b.what && a.size == b.size && a.has_source == b.has_source && a.source == b.source &&
         a.source_port == b.source_port && a.version == b.version;
}

void check_alone(std::string_view in, const proxy_header& h) {
  switch (h.what) {
    case kind::complete:
      FUZZ_CHECK(h.size > 0 && h.size <= in.size());
      FUZZ_CHECK(h.size <= gateway::net::proxy_header_max_size);
      FUZZ_CHECK(h.version == 1 || h.version == 2);
      if (h.version == 1) FUZZ_CHECK(h.size <= gateway::net::proxy_v1_max_size);
      FUZZ_CHECK(h.error.empty());
      break;
    case kind::incomplete:
      FUZZ_CHECK(in.size() < gateway::net::proxy_header_max_size);
      FUZZ_CHECK(!h.has_source && h.size == 0);
      break;
    case kind::invalid:
      FUZZ_CHECK(!h.error.empty());
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const proxy_header whole = parse_proxy_header(in);
  check_alone(in, whole);

  // What follows the bytes seen so far cannot change a decision.
  std::string longer(in);
  longer += "GET / HTTP/1.1\r\n\r\n";
  const proxy_header extended = parse_proxy_header(longer);
  check_alone(longer, extended);
  if (whole.what != kind::incomplete) FUZZ_CHECK(same(whole, extended));

  // A complete header parses the same on its own bytes alone.
  if (whole.what == kind::complete) FUZZ_CHECK(same(whole, parse_proxy_header(in.substr(0, whole.size))));

  // A prefix of an incomplete or complete input is never invalid, and a
  // prefix of anything is never a different complete header.
  if (size > 0) {
    const std::size_t cut = data[0] % (size + 1);
    const proxy_header part = parse_proxy_header(in.substr(0, cut));
    check_alone(in.substr(0, cut), part);
    if (whole.what != kind::invalid) FUZZ_CHECK(part.what != kind::invalid);
    if (part.what == kind::complete) FUZZ_CHECK(same(part, whole));
    if (part.what == kind::invalid) FUZZ_CHECK(whole.what == kind::invalid);
  }
  return 0;
}
