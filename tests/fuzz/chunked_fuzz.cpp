// libFuzzer target: the strict chunked decoder (http::chunked_decoder),
// used for request bodies and upstream responses.
//
// A differential check: how the bytes are cut into reads must not change the
// result. The body is decoded three ways, whole, in two pieces cut at a
// point chosen by the first input byte, and one byte per call, and all three
// must agree on the status, the decoded bytes, the byte count and the offset
// where decoding stopped (the end of the body, or the offending byte): a
// decoder whose framing depends on TCP segmentation is a smuggling vector.
//
// Input layout: byte 0 picks the cut (scaled to the body length), byte 1 the
// body cap (< 128: none; else (b - 128) * 8 bytes, so too_large is reached),
// the rest is the chunked body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/http/chunked_decoder.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using gateway::http::chunked_decoder;

struct outcome {
  chunked_decoder::status what = chunked_decoder::status::need_more;
  std::size_t stop = 0;  // absolute offset where decoding stopped
  std::string bytes;
  std::uint64_t counted = 0;
};

bool append(void* ctx, const char* data, std::size_t len) {
  static_cast<std::string*>(ctx)->append(data, len);
  return true;
}

// Feeds `body` in pieces of the given boundaries, stopping at the first
// result that is not need_more, as every caller does.
template <class Cuts>
outcome decode(std::string_view body, std::uint64_t max_body, const Cuts& cuts) {
  chunked_decoder d(max_body);
  outcome o;
  std::size_t pos = 0;
  for (std::size_t cut : cuts) {
    if (cut < pos) continue;
    if (cut > body.size()) cut = body.size();
    std::string_view piece = body.substr(pos, cut - pos);
    auto r = d.feed(piece, &append, &o.bytes);
    FUZZ_CHECK(r.consumed <= piece.size());
    o.what = r.what;
    o.stop = pos + r.consumed;
    if (r.what != chunked_decoder::status::need_more) break;
    FUZZ_CHECK(r.consumed == piece.size());
    FUZZ_CHECK(r.message.empty());
    pos = cut;
  }
  o.counted = d.body_bytes();
  FUZZ_CHECK(o.counted == o.bytes.size());
  FUZZ_CHECK(o.counted <= max_body);
  if (o.what == chunked_decoder::status::complete) {
    // A finished decoder takes nothing more (what follows the body is the
    // next request's).
    auto again = d.feed("GET", &append, &o.bytes);
    FUZZ_CHECK(again.what == chunked_decoder::status::complete && again.consumed == 0);
    FUZZ_CHECK(o.bytes.size() == o.counted);
  }
  return o;
}

struct byte_cuts {
  std::size_t n;
  struct iterator {
    std::size_t i;
    std::size_t operator*() const { return i; }
    iterator& operator++() {
      ++i;
      return *this;
    }
    bool operator!=(const iterator& o) const { return i != o.i; }
  };
  iterator begin() const { return {1}; }
  iterator end() const { return {n + 1}; }
};

void check_same(const outcome& a, const outcome& b) {
  FUZZ_CHECK(a.what == b.what);
  FUZZ_CHECK(a.stop == b.stop);
  FUZZ_CHECK(a.bytes == b.bytes);
  FUZZ_CHECK(a.counted == b.counted);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::size_t cut = body.size() * data[0] / 255;
  const std::uint64_t max_body = data[1] < 128 ? UINT64_MAX : std::uint64_t{data[1] - 128u} * 8;

  const std::size_t whole_cuts[] = {body.size()};
  const std::size_t two_cuts[] = {cut, body.size()};
  outcome whole = decode(body, max_body, whole_cuts);
  outcome two = decode(body, max_body, two_cuts);
  outcome bytes = decode(body, max_body, byte_cuts{body.size()});
  check_same(whole, two);
  check_same(whole, bytes);
  if (whole.what == chunked_decoder::status::need_more) FUZZ_CHECK(whole.stop == body.size());
  return 0;
}
