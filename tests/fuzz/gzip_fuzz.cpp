// libFuzzer target: the gzip path of the compression middleware
// (middleware::decompress for request bodies, gzip_encoder for responses).
//
// Input layout: byte 0 picks a mode, the rest is the payload.
//  - modes 0-4 decode the payload as "gzip", "x-gzip", "deflate", " GZip "
//    or "br" with a 64 KiB limit. The output never exceeds the limit, the
//    string's capacity never grows past limit + 1, a failure leaves it
//    empty, and the limit is exact: a success of n bytes succeeds again with
//    limit n and is too_large with limit n - 1.
//  - modes 5-7 compress the payload with gzip_encoder (level, size hint and
//    flush points taken from byte 0 and the payload) and decode it again:
//    the result must be the payload, byte for byte.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "gateway/middleware/gzip_codec.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace gateway::middleware;

constexpr std::size_t limit = 64 * 1024;

void decode_mode(std::string_view encoding, std::span<const char> in) {
  std::string out;
  const std::size_t cap_before = out.capacity();
  decompress_result r = decompress(encoding, in, limit, out);
  FUZZ_CHECK(out.size() <= limit);
  FUZZ_CHECK(out.capacity() <= std::max(cap_before, limit + 1));
  if (r != decompress_result::ok) {
    FUZZ_CHECK(out.empty());
    if (encoding == "br") FUZZ_CHECK(r == decompress_result::unsupported_encoding);
    return;
  }
  FUZZ_CHECK(encoding != "br");

  // The limit is exact, and a string with capacity to spare is reused.
  std::string exact;
  FUZZ_CHECK(decompress(encoding, in, out.size(), exact) == decompress_result::ok);
  FUZZ_CHECK(exact == out);
  if (!out.empty()) {
    std::string over;
    over.reserve(limit);
    const std::size_t cap = over.capacity();
    FUZZ_CHECK(decompress(encoding, in, out.size() - 1, over) == decompress_result::too_large);
    FUZZ_CHECK(over.empty() && over.capacity() == cap);
  }
}

void round_trip_mode(std::uint8_t mode, std::span<const char> in) {
  const int level = (mode >> 3) % 11 - 1;  // -1..9
  // Size hints: none, exact, and far too small (the output must stay right).
  const std::size_t hints[] = {0, in.size(), in.size() / 8 + 1};
  const std::size_t hint = hints[(mode >> 6) % 3];
  gzip_encoder enc(level, hint);
  std::string packed;
  // Write in pieces cut at the positions of '\n' bytes, flushing after
  // pieces that end in "\n\n": exercises write/flush at odd boundaries.
  std::size_t start = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\n') continue;
    enc.write(in.subspan(start, i + 1 - start), packed);
    if (i > 0 && in[i - 1] == '\n') enc.flush(packed);
    start = i + 1;
  }
  enc.write(in.subspan(start), packed);
  enc.finish(packed);
  FUZZ_CHECK(enc.finished());

  std::string out;
  decompress_result r = decompress("gzip", packed, limit, out);
  if (in.size() <= limit) {
    FUZZ_CHECK(r == decompress_result::ok);
    FUZZ_CHECK(std::string_view(out) == std::string_view(in.data(), in.size()));
  } else {
    FUZZ_CHECK(r == decompress_result::too_large);
  }

  // The same encoder, reset, gives a stream that decodes the same.
  enc.reset();
  std::string again;
  enc.write(in, again);
  enc.finish(again);
  std::string out2;
  FUZZ_CHECK(decompress("gzip", again, limit, out2) == r);
  FUZZ_CHECK(out2 == out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  const std::span<const char> in(reinterpret_cast<const char*>(data) + 1, size - 1);
  static constexpr std::string_view encodings[] = {"gzip", "x-gzip", "deflate", " GZip ", "br"};
  if (mode % 8 < 5) decode_mode(encodings[mode % 8], in);
  else round_trip_mode(mode, in);
  return 0;
}
