#include "gateway/middleware/gzip_codec.hpp"

#include <catch2/catch.hpp>
#include <zlib.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

using gateway::middleware::accepts_gzip;
using gateway::middleware::decompress;
using gateway::middleware::decompress_budget;
using gateway::middleware::decompress_result;
using gateway::middleware::gzip_acceptance;
using gateway::middleware::gzip_encoder;
using gateway::middleware::is_compressible_type;

namespace {

constexpr int gzip_bits = 15 + 16;
constexpr int zlib_bits = 15;
constexpr int raw_bits = -15;
constexpr std::size_t mib = 1024 * 1024;

// Compresses with zlib directly (not with the code under test). `pieces`
// are fed one after the other, so a large repetitive input need not exist
// in memory at once.
std::string zcompress_pieces(const std::vector<std::string_view>& pieces, std::size_t repeat, int window_bits,
                             int level = 6) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out;
  char buf[64 * 1024];
  const auto pump = [&](int flush) {
    int rc = Z_OK;
    do {
      zs.next_out = reinterpret_cast<Bytef*>(buf);
      zs.avail_out = sizeof buf;
      rc = deflate(&zs, flush);
      REQUIRE(rc != Z_STREAM_ERROR);
      out.append(buf, sizeof buf - zs.avail_out);
    } while (zs.avail_out == 0);
    return rc;
  };
  for (std::size_t r = 0; r < repeat; ++r) {
    for (std::string_view p : pieces) {
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(p.data()));
      zs.avail_in = static_cast<uInt>(p.size());
      pump(Z_NO_FLUSH);
    }
  }
  REQUIRE(pump(Z_FINISH) == Z_STREAM_END);
  deflateEnd(&zs);
  return out;
}

std::string zcompress(std::string_view in, int window_bits, int level = 6) {
  return zcompress_pieces({in}, 1, window_bits, level);
}

// Decodes with zlib directly. With `require_end`, the stream must be
// complete; without, whatever is decodable so far is returned.
std::string zinflate(std::string_view in, int window_bits, bool require_end = true) {
  z_stream zs{};
  REQUIRE(inflateInit2(&zs, window_bits) == Z_OK);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[64 * 1024];
  int rc = Z_OK;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
  } while (rc == Z_OK);
  inflateEnd(&zs);
  if (require_end) {
    REQUIRE(rc == Z_STREAM_END);
    REQUIRE(zs.avail_in == 0);
  } else {
    REQUIRE((rc == Z_BUF_ERROR || rc == Z_STREAM_END));
  }
  return out;
}

// Deterministic text that compresses like real JSON: not too well, not badly.
std::string sample_text(std::size_t size, std::uint32_t seed = 1) {
  static const char* const words[] = {"\"id\":", "\"name\":", "\"value\":", "true", "false", "null", "{", "}",
                                      "[", "]", ",", "\"gateway\"", "\"request\"", "12345", "-0.5", "\"\\u00e9\"",
                                      " ", "\n", "\"alpha\"", "\"omega\""};
  std::string s;
  s.reserve(size + 16);
  std::uint32_t x = seed;
  while (s.size() < size) {
    x = x * 1664525u + 1013904223u;
    s += words[(x >> 16) % (sizeof words / sizeof words[0])];
    if ((x & 0xff) == 0) s += static_cast<char>(x >> 24);  // an occasional arbitrary byte
  }
  s.resize(size);
  return s;
}

std::span<const char> as_span(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

TEST_CASE("decompress round-trips gzip, x-gzip and deflate in any letter case", "[unit][middleware][gzip]") {
  const std::string text = sample_text(100'000);
  std::string out = "stale content";
  CHECK(decompress("gzip", as_span(zcompress(text, gzip_bits)), 10 * mib, out) == decompress_result::ok);
  CHECK(out == text);
  CHECK(decompress("GZip", as_span(zcompress(text, gzip_bits)), 10 * mib, out) == decompress_result::ok);
  CHECK(out == text);
  CHECK(decompress("x-gzip", as_span(zcompress(text, gzip_bits)), 10 * mib, out) == decompress_result::ok);
  CHECK(out == text);
  CHECK(decompress(" gzip\t", as_span(zcompress(text, gzip_bits)), 10 * mib, out) == decompress_result::ok);
  CHECK(out == text);
  CHECK(decompress("deflate", as_span(zcompress(text, zlib_bits)), 10 * mib, out) == decompress_result::ok);
  CHECK(out == text);
  CHECK(decompress("DEFLATE", as_span(zcompress(text, zlib_bits, 1)), 10 * mib, out) == decompress_result::ok);
  CHECK(out == text);
  CHECK(gateway::middleware::to_string(decompress_result::ok) == "ok");
}

TEST_CASE("decompress accepts raw deflate when deflate lacks the zlib header", "[unit][middleware][gzip]") {
  const std::string text = sample_text(50'000, 7);
  for (int level : {0, 1, 6, 9}) {
    std::string out;
    INFO("level " << level);
    CHECK(decompress("deflate", as_span(zcompress(text, raw_bits, level)), 10 * mib, out) == decompress_result::ok);
    CHECK(out == text);
  }
  // Raw deflate is not accepted for gzip.
  std::string out;
  CHECK(decompress("gzip", as_span(zcompress(text, raw_bits)), 10 * mib, out) == decompress_result::corrupt);
}

TEST_CASE("decompress handles empty content and an empty body", "[unit][middleware][gzip]") {
  std::string out = "stale";
  CHECK(decompress("gzip", as_span(zcompress("", gzip_bits)), 10 * mib, out) == decompress_result::ok);
  CHECK(out.empty());
  out = "stale";
  CHECK(decompress("deflate", as_span(zcompress("", zlib_bits)), 10 * mib, out) == decompress_result::ok);
  CHECK(out.empty());
  CHECK(decompress("deflate", as_span(zcompress("", raw_bits)), 10 * mib, out) == decompress_result::ok);
  CHECK(out.empty());
  // Zero bytes are not a stream at all.
  CHECK(decompress("gzip", {}, 10 * mib, out) == decompress_result::corrupt);
  CHECK(decompress("deflate", {}, 10 * mib, out) == decompress_result::corrupt);
  // A limit of zero still allows empty content.
  CHECK(decompress("gzip", as_span(zcompress("", gzip_bits)), 0, out) == decompress_result::ok);
  CHECK(decompress("gzip", as_span(zcompress("x", gzip_bits)), 0, out) == decompress_result::too_large);
}

TEST_CASE("decompress round-trips a 5 MiB body", "[unit][middleware][gzip]") {
  const std::string text = sample_text(5 * mib, 3);
  const std::string gz = zcompress(text, gzip_bits, 1);
  std::string out;
  REQUIRE(decompress("gzip", as_span(gz), 10 * mib, out) == decompress_result::ok);
  CHECK(out.size() == text.size());
  CHECK(out == text);
  CHECK(out.capacity() <= 10 * mib + 1);
  const std::string zl = zcompress(text, zlib_bits, 6);
  REQUIRE(decompress("deflate", as_span(zl), 10 * mib, out) == decompress_result::ok);
  CHECK(out == text);
}

TEST_CASE("decompress refuses unsupported encodings", "[unit][middleware][gzip]") {
  const std::string gz = zcompress("hello", gzip_bits);
  for (const char* enc : {"br", "identity", "compress", "zstd", "", "gzip, gzip", "gzip;q=1", "gzipx"}) {
    std::string out = "stale";
    INFO(enc);
    CHECK(decompress(enc, as_span(gz), 10 * mib, out) == decompress_result::unsupported_encoding);
    CHECK(out.empty());
  }
}

TEST_CASE("decompress reports corrupt streams", "[unit][middleware][gzip]") {
  const std::string text = sample_text(20'000, 5);
  const std::string gz = zcompress(text, gzip_bits);
  std::string out;

  CHECK(decompress("gzip", as_span(std::string("this is not gzip at all")), 10 * mib, out) ==
        decompress_result::corrupt);
  CHECK(out.empty());
  CHECK(decompress("deflate", as_span(std::string("\xff\xff\xff\xff garbage", 12)), 10 * mib, out) ==
        decompress_result::corrupt);

  // A flipped bit in the compressed data, the CRC-32 or the length trailer.
  for (std::size_t pos : {gz.size() / 2, gz.size() - 8, gz.size() - 5, gz.size() - 4, gz.size() - 1}) {
    std::string bad = gz;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x01);
    INFO("byte " << pos);
    CHECK(decompress("gzip", as_span(bad), 10 * mib, out) == decompress_result::corrupt);
    CHECK(out.empty());
  }
  // The zlib format's Adler-32 trailer.
  std::string zl = zcompress(text, zlib_bits);
  zl.back() = static_cast<char>(zl.back() ^ 0x01);
  CHECK(decompress("deflate", as_span(zl), 10 * mib, out) == decompress_result::corrupt);
  // A zlib header asking for a preset dictionary.
  z_stream zs{};
  REQUIRE(deflateInit(&zs, 6) == Z_OK);
  REQUIRE(deflateSetDictionary(&zs, reinterpret_cast<const Bytef*>("dict"), 4) == Z_OK);
  char buf[256];
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>("dictdict"));
  zs.avail_in = 8;
  zs.next_out = reinterpret_cast<Bytef*>(buf);
  zs.avail_out = sizeof buf;
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  const std::string with_dict(buf, sizeof buf - zs.avail_out);
  deflateEnd(&zs);
  CHECK(decompress("deflate", as_span(with_dict), 10 * mib, out) == decompress_result::corrupt);
  CHECK(gateway::middleware::to_string(decompress_result::corrupt) == "corrupt");
}

TEST_CASE("decompress reports every truncation of a stream as corrupt", "[unit][middleware][gzip]") {
  const std::string text = sample_text(3'000, 9);
  for (int bits : {gzip_bits, zlib_bits, raw_bits}) {
    const std::string z = zcompress(text, bits);
    const char* enc = bits == gzip_bits ? "gzip" : "deflate";
    std::string out;
    REQUIRE(decompress(enc, as_span(z), 10 * mib, out) == decompress_result::ok);
    int wrong = 0;
    for (std::size_t n = 0; n < z.size(); ++n) {
      if (decompress(enc, as_span(std::string_view(z).substr(0, n)), 10 * mib, out) != decompress_result::corrupt) {
        ++wrong;
      }
    }
    INFO("window bits " << bits);
    CHECK(wrong == 0);
  }
}

TEST_CASE("decompress reports trailing data after the stream as corrupt", "[unit][middleware][gzip]") {
  const std::string text = sample_text(5'000, 11);
  std::string out;
  const std::string gz = zcompress(text, gzip_bits);
  for (const std::string& tail : {std::string("x"), std::string(4, '\0'), std::string("\x1f"),
                                  std::string("\x1f\x8b"), std::string(gz.substr(0, 10))}) {
    INFO("tail of " << tail.size() << " bytes");
    CHECK(decompress("gzip", as_span(gz + tail), 10 * mib, out) == decompress_result::corrupt);
    CHECK(out.empty());
  }
  CHECK(decompress("deflate", as_span(zcompress(text, zlib_bits) + "x"), 10 * mib, out) ==
        decompress_result::corrupt);
  CHECK(decompress("deflate", as_span(zcompress(text, raw_bits) + "x"), 10 * mib, out) ==
        decompress_result::corrupt);
  // A second zlib stream is not a gzip-style series.
  const std::string zl = zcompress(text, zlib_bits);
  CHECK(decompress("deflate", as_span(zl + zl), 10 * mib, out) == decompress_result::corrupt);
}

TEST_CASE("decompress decodes every member of a multi-member gzip body", "[unit][middleware][gzip]") {
  const std::string a = sample_text(10'000, 21);
  const std::string b = sample_text(30'000, 22);
  const std::string body = zcompress(a, gzip_bits) + zcompress("", gzip_bits) + zcompress(b, gzip_bits, 1);
  std::string out;
  REQUIRE(decompress("gzip", as_span(body), 10 * mib, out) == decompress_result::ok);
  CHECK(out == a + b);
  // The limit covers the members together.
  CHECK(decompress("gzip", as_span(body), a.size() + b.size() - 1, out) == decompress_result::too_large);
  CHECK(decompress("gzip", as_span(body), a.size() + b.size(), out) == decompress_result::ok);
}

TEST_CASE("decompress enforces the limit to the byte", "[unit][middleware][gzip]") {
  const std::string text = sample_text(100'000, 31);
  for (int bits : {gzip_bits, zlib_bits, raw_bits}) {
    const std::string z = zcompress(text, bits);
    const char* enc = bits == gzip_bits ? "gzip" : "deflate";
    std::string out;
    INFO("window bits " << bits);
    CHECK(decompress(enc, as_span(z), text.size(), out) == decompress_result::ok);
    CHECK(out == text);
    std::string fresh;
    CHECK(decompress(enc, as_span(z), text.size() - 1, fresh) == decompress_result::too_large);
    CHECK(fresh.empty());
    CHECK(fresh.capacity() <= text.size());
    CHECK(decompress(enc, as_span(z), 1, out) == decompress_result::too_large);
    CHECK(gateway::middleware::to_string(decompress_result::too_large) == "too_large");
  }
}

TEST_CASE("decompress stops a compression bomb at the limit without allocating past it", "[unit][middleware][gzip]") {
  // 64 MiB of zeros compress to about 64 KiB (deflate's ratio tops out near 1032:1).
  const std::string zeros(mib, '\0');
  const std::string bomb_gz = zcompress_pieces({zeros}, 64, gzip_bits, 9);
  const std::string bomb_zl = zcompress_pieces({zeros}, 64, zlib_bits, 9);
  REQUIRE(bomb_gz.size() < 128 * 1024);
  const std::size_t limit = 10 * mib;
  for (const auto& [enc, bomb] : {std::pair<const char*, const std::string&>{"gzip", bomb_gz},
                                  std::pair<const char*, const std::string&>{"deflate", bomb_zl}}) {
    std::string out;
    INFO(enc);
    CHECK(decompress(enc, as_span(bomb), limit, out) == decompress_result::too_large);
    CHECK(out.empty());
    CHECK(out.capacity() <= limit + mib);
    CHECK(out.capacity() <= limit + 1);
  }
  // Under a limit it fits, it decodes in full.
  std::string out;
  REQUIRE(decompress("gzip", as_span(bomb_gz), 64 * mib, out) == decompress_result::ok);
  CHECK(out.size() == 64 * mib);
  CHECK(out.find_first_not_of('\0') == std::string::npos);
}

TEST_CASE("decompress reuses the capacity of the output string", "[unit][middleware][gzip]") {
  std::string out;
  out.reserve(4 * mib);
  const char* const before = out.data();
  const std::string text = sample_text(1 * mib, 41);
  REQUIRE(decompress("gzip", as_span(zcompress(text, gzip_bits)), 10 * mib, out) == decompress_result::ok);
  CHECK(out == text);
  CHECK(out.data() == before);
  CHECK(out.capacity() == 4 * mib);
}

TEST_CASE("gzip encoder output decodes with zlib whatever the write sizes", "[unit][middleware][gzip]") {
  const std::string text = sample_text(300'000, 51);
  for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{1000}, std::size_t{65536}, text.size()}) {
    gzip_encoder enc;
    std::string out;
    for (std::size_t pos = 0; pos < text.size(); pos += chunk) {
      enc.write(as_span(std::string_view(text).substr(pos, chunk)), out);
      if (chunk == 1 && pos > 2000) {  // 1-byte writes are slow to test at full length
        enc.write(as_span(std::string_view(text).substr(pos + 1)), out);
        break;
      }
    }
    CHECK_FALSE(enc.finished());
    enc.finish(out);
    CHECK(enc.finished());
    INFO("chunk " << chunk);
    CHECK(out.size() < text.size() / 2);
    CHECK(zinflate(out, gzip_bits) == text);
    std::string back;
    CHECK(decompress("gzip", as_span(out), 10 * mib, back) == decompress_result::ok);
    CHECK(back == text);
  }
}

TEST_CASE("gzip encoder handles empty streams, levels and reuse after reset", "[unit][middleware][gzip]") {
  gzip_encoder enc(6);
  CHECK(enc.level() == 6);
  std::string empty;
  enc.finish(empty);
  CHECK(empty.size() >= 18);  // gzip header + empty block + trailer
  CHECK(zinflate(empty, gzip_bits).empty());
  enc.finish(empty);  // a second finish() adds nothing
  CHECK(zinflate(empty, gzip_bits).empty());

  const std::string text = sample_text(50'000, 61);
  enc.reset();
  CHECK_FALSE(enc.finished());
  std::string first;
  enc.write(as_span(text), first);
  enc.finish(first);
  enc.reset();
  std::string second;
  enc.write(as_span(text), second);
  enc.finish(second);
  CHECK(first == second);
  CHECK(zinflate(second, gzip_bits) == text);

  for (int level : {-1, 0, 1, 9}) {
    gzip_encoder e(level);
    std::string out;
    e.write(as_span(text), out);
    e.finish(out);
    INFO("level " << level);
    CHECK(zinflate(out, gzip_bits) == text);
    if (level == 0) CHECK(out.size() > text.size());  // stored blocks
  }
  CHECK_THROWS_AS(gzip_encoder(10), std::invalid_argument);
  CHECK_THROWS_AS(gzip_encoder(-2), std::invalid_argument);

  gzip_encoder moved_from(1);
  gzip_encoder moved(std::move(moved_from));
  std::string out;
  moved.write(as_span(text), out);
  moved.finish(out);
  CHECK(zinflate(out, gzip_bits) == text);
  gzip_encoder assigned(9);
  assigned = std::move(moved);
  assigned.reset();
  out.clear();
  assigned.write(as_span(text), out);
  assigned.finish(out);
  CHECK(zinflate(out, gzip_bits) == text);
}

TEST_CASE("gzip encoder flush makes everything written so far decodable", "[unit][middleware][gzip]") {
  gzip_encoder enc;
  std::string out;
  enc.write(as_span(std::string_view("data: first event\n\n")), out);
  enc.flush(out);
  CHECK(zinflate(out, gzip_bits, false) == "data: first event\n\n");
  enc.flush(out);  // nothing new: harmless
  enc.write(as_span(std::string_view("data: second event\n\n")), out);
  enc.flush(out);
  CHECK(zinflate(out, gzip_bits, false) == "data: first event\n\ndata: second event\n\n");
  enc.finish(out);
  CHECK(zinflate(out, gzip_bits) == "data: first event\n\ndata: second event\n\n");
}

TEST_CASE("gzip encoder shrinks its window for a small size hint and stays correct past it", "[unit][middleware][gzip]") {
  CHECK(gzip_encoder(1).window_bits() == 15);
  CHECK(gzip_encoder(1, 0).window_bits() == 15);
  CHECK(gzip_encoder(1, 100).window_bits() == 9);
  CHECK(gzip_encoder(1, 2000).window_bits() == 12);
  CHECK(gzip_encoder(1, 1 * mib).window_bits() == 15);

  const std::string text = sample_text(200'000, 71);
  gzip_encoder small(1, 100);
  std::string out;
  small.write(as_span(text), out);
  small.finish(out);
  CHECK(zinflate(out, gzip_bits) == text);
  std::string back;
  CHECK(decompress("gzip", as_span(out), 10 * mib, back) == decompress_result::ok);
  CHECK(back == text);
}

TEST_CASE("is_compressible_type picks text-like media types", "[unit][middleware][gzip]") {
  for (const char* t : {"text/html", "text/plain; charset=utf-8", "TEXT/CSS", "text/csv", "application/json",
                        "application/json;charset=UTF-8", " application/json ", "Application/JavaScript",
                        "application/x-javascript", "application/xml", "application/problem+json",
                        "application/ld+json", "application/atom+xml", "image/svg+xml", "application/vnd.api+json",
                        "application/x-www-form-urlencoded", "application/yaml"}) {
    INFO(t);
    CHECK(is_compressible_type(t));
  }
  for (const char* t : {"image/png", "image/jpeg", "image/webp", "video/mp4", "audio/mpeg", "font/woff2",
                        "application/octet-stream", "application/zip", "application/gzip", "application/pdf",
                        "application/wasm", "text/event-stream", "text/event-stream; charset=utf-8", "", "json",
                        "text/", "/json", "application/jsonx", "application/json+zip", "multipart/form-data"}) {
    INFO(t);
    CHECK_FALSE(is_compressible_type(t));
  }
}

TEST_CASE("accepts_gzip honours q values and the wildcard", "[unit][middleware][gzip]") {
  for (const char* v : {"gzip", "GZIP", "x-gzip", "*", "br, gzip;q=0.5", "gzip, deflate, br", "deflate;q=1, gzip;q=0.001",
                        "gzip;q=1", "gzip;q=1.000", "gzip;Q=0.8", "gzip ; q=0.5", "br;q=1.0, *;q=0.1", ", ,gzip",
                        "gzip;level=1", "gzip;q=0.5, gzip;q=1", "gzip, x-gzip;q=0.5", "gzip;q=0.5, *;q=0"}) {
    INFO(v);
    CHECK(accepts_gzip(v));
  }
  for (const char* v : {"", "gzip;q=0", "gzip;q=0.000", "GZIP;Q=0", "identity", "br", "deflate", "br, deflate",
                        "*;q=0", "gzip;q=0, *", "*, gzip;q=0", "x-gzip;q=0, *;q=1", "gzipx", "gzip;q=2",
                        "gzip;q=1.5", "gzip;q=0.0001", "gzip;q=", "gzip;q=abc", "gzip;q=-1", "identity;q=1, br",
                        "gzip;q=0, gzip;q=0.5", "gzip, gzip;q=0", "gzip, x-gzip;q=0", "*, *;q=0"}) {
    INFO(v);
    CHECK_FALSE(accepts_gzip(v));
  }
}

TEST_CASE("gzip_acceptance reads every Accept-Encoding line as one list", "[unit][middleware][gzip]") {
  using lines = std::vector<std::string_view>;
  const auto accepts = [](const lines& ls) {
    gzip_acceptance a;
    for (auto l : ls) a.add(l);
    return a.accepts();
  };
  CHECK_FALSE(accepts({}));
  CHECK(accepts({"br", "gzip"}));
  CHECK(accepts({"gzip", "br"}));
  CHECK(accepts({"br", "*"}));
  CHECK(accepts({"", "gzip"}));
  CHECK_FALSE(accepts({"gzip", "gzip;q=0"}));
  CHECK_FALSE(accepts({"gzip;q=0", "gzip"}));
  CHECK_FALSE(accepts({"*", "gzip;q=0"}));
  CHECK_FALSE(accepts({"br", "deflate"}));
  CHECK_FALSE(accepts({""}));
  CHECK(accepts({"gzip;q=abc", "gzip;q=0.2"}));
}

TEST_CASE("decompress takes its output room from a shared budget and stops when refused", "[unit][middleware][gzip]") {
  const std::string plain(1u << 20, 'z');
  const std::string gz = zcompress(plain, gzip_bits);
  std::string out;

  gateway::core::byte_budget roomy(8u << 20);
  decompress_budget b{&roomy};
  REQUIRE(decompress("gzip", as_span(gz), 4u << 20, out, &b) == decompress_result::ok);
  CHECK(out == plain);
  CHECK(b.taken >= plain.size());
  CHECK(b.taken <= 2 * plain.size() + 1);
  CHECK(roomy.used() == b.taken);
  roomy.give_back(b.taken);

  gateway::core::byte_budget tight(256u << 10);
  decompress_budget t{&tight};
  CHECK(decompress("gzip", as_span(gz), 4u << 20, out, &t) == decompress_result::over_budget);
  CHECK(out.empty());
  CHECK(t.taken <= tight.limit());
  CHECK(tight.used() == t.taken);

  // Without a budget (or with a null one) only the limit applies.
  decompress_budget none{};
  CHECK(decompress("gzip", as_span(gz), 4u << 20, out, &none) == decompress_result::ok);
  CHECK(none.taken == 0);
}
