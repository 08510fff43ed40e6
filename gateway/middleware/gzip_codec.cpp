#include "gateway/middleware/gzip_codec.hpp"

#include <zlib.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <limits>
#include <new>
#include <stdexcept>

#include "gateway/core/ascii.hpp"
#include "gateway/http/negotiation.hpp"
#include "gateway/http/syntax.hpp"

namespace gateway::middleware {

namespace {

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && core::iequals_ascii(s.substr(s.size() - suffix.size()), suffix);
}

// zlib counts in uInt; larger spans are fed in pieces.
constexpr std::size_t max_zlib_chunk = std::numeric_limits<uInt>::max();

// RFC 1950 section 2.2: CM = 8 (deflate), CINFO <= 7 (window up to 32 KiB),
// and CMF*256 + FLG a multiple of 31.
bool looks_like_zlib_header(std::span<const char> in) {
  if (in.size() < 2) return false;
  const auto cmf = static_cast<unsigned char>(in[0]);
  const auto flg = static_cast<unsigned char>(in[1]);
  return (cmf & 0x0f) == 8 && (cmf >> 4) <= 7 && (cmf * 256u + flg) % 31u == 0;
}

// Frees the inflate state on every way out of decompress().
struct inflate_guard {
  z_stream* zs;
  ~inflate_guard() { inflateEnd(zs); }
};

// Sizes `out` to `new_size` bytes (zero-filled bytes that inflate then
// overwrites), keeping its first `written` bytes. libstdc++ rounds a growth
// between capacity and 2*capacity up to 2*capacity (in reserve() and
// resize() alike), which could overshoot the limit, so a bigger buffer is
// built with exactly the wanted capacity and swapped in.
void resize_exact(std::string& out, std::size_t written, std::size_t new_size) {
  if (new_size <= out.capacity()) {
    out.resize(new_size);
    return;
  }
  std::string bigger;
  bigger.reserve(new_size);
  bigger.append(out.data(), written);
  bigger.resize(new_size);
  out.swap(bigger);
}

}  // namespace

std::string_view to_string(decompress_result r) noexcept {
  switch (r) {
    case decompress_result::ok: return "ok";
    case decompress_result::too_large: return "too_large";
    case decompress_result::corrupt: return "corrupt";
    case decompress_result::unsupported_encoding: return "unsupported_encoding";
    case decompress_result::over_budget: return "over_budget";
  }
  return "unknown";
}

decompress_result decompress(std::string_view encoding, std::span<const char> input, std::size_t limit,
                             std::string& out, decompress_budget* budget) {
  out.clear();
  encoding = http::trim_ows(encoding);
  // "x-gzip" is an alias of "gzip" (RFC 9110 section 8.4.1.3).
  const bool gzip = core::iequals_ascii(encoding, "gzip") || core::iequals_ascii(encoding, "x-gzip");
  if (!gzip && !core::iequals_ascii(encoding, "deflate")) return decompress_result::unsupported_encoding;

  // RFC 9110 section 8.4.1.2: "deflate" is the zlib format (RFC 1950). Many
  // clients (old IE, some HTTP libraries) send raw deflate (RFC 1951) instead,
  // so we accept that too. A raw stream starts with a valid zlib header only
  // if it opens with a non-final stored block whose padding bits are not zero,
  // which no encoder writes, so the first two bytes decide which it is.
  int window_bits = 15;
  if (gzip) window_bits = 15 + 16;
  else if (!looks_like_zlib_header(input)) window_bits = -15;

  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) {
    // Only Z_MEM_ERROR in practice; the body cannot be decoded either way.
    return decompress_result::corrupt;
  }
  inflate_guard guard{&zs};

  // At most limit + 1 output bytes: the extra byte tells "exactly limit"
  // from "more than limit" without decoding any further.
  const std::size_t ceiling = limit == std::numeric_limits<std::size_t>::max() ? limit : limit + 1;
  // A first guess of 4x the input (typical for JSON and text), at least
  // 1 KiB; doubled as needed. Capacity the caller's string already has is
  // reused by the growth steps without being zero-filled up front.
  const std::size_t guess = input.size() > ceiling / 4 ? ceiling : std::max<std::size_t>(input.size() * 4, 1024);
  // Output room beyond what the budget has paid for is taken from it first.
  std::size_t paid = 0;
  const auto afford = [&](std::size_t size) {
    if (budget == nullptr || budget->shared == nullptr || size <= paid) return true;
    if (!budget->shared->try_take(size - paid)) return false;
    budget->taken += size - paid;
    paid = size;
    return true;
  };
  if (!afford(std::min(ceiling, guess))) {
    out.clear();
    return decompress_result::over_budget;
  }
  resize_exact(out, 0, std::min(ceiling, guess));

  const char* next_in = input.data();
  std::size_t in_left = input.size();
  std::size_t written = 0;
  const auto fail = [&](decompress_result r) {
    out.clear();
    return r;
  };

  for (;;) {
    if (zs.avail_in == 0 && in_left > 0) {
      const std::size_t n = std::min(in_left, max_zlib_chunk);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(next_in));
      zs.avail_in = static_cast<uInt>(n);
      next_in += n;
      in_left -= n;
    }
    if (written == out.size()) {
      if (written >= ceiling) return fail(decompress_result::too_large);
      const std::size_t bigger = std::min(ceiling, std::max<std::size_t>(out.size() * 2, 1024));
      if (!afford(bigger)) return fail(decompress_result::over_budget);
      resize_exact(out, written, bigger);
    }
    const std::size_t room = std::min(out.size() - written, max_zlib_chunk);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + written);
    zs.avail_out = static_cast<uInt>(room);

    const int rc = inflate(&zs, Z_NO_FLUSH);
    written += room - zs.avail_out;
    if (written > limit) return fail(decompress_result::too_large);

    if (rc == Z_STREAM_END) {
      const bool more_input = zs.avail_in > 0 || in_left > 0;
      if (!more_input) break;
      // RFC 1952 section 2.2: a gzip file is a series of members; decode the
      // next one. Anything that is not a gzip member (zero padding, junk)
      // fails its header check and makes the body corrupt. zlib and raw
      // deflate streams have no such series: trailing bytes are corrupt.
      if (!gzip || inflateReset(&zs) != Z_OK) return fail(decompress_result::corrupt);
      continue;
    }
    if (rc == Z_OK) continue;
    // Z_BUF_ERROR: no progress possible. With output room left that means the
    // input ended before the stream did (truncated); without, grow and retry.
    if (rc == Z_BUF_ERROR && zs.avail_out == 0) continue;
    return fail(decompress_result::corrupt);  // Z_DATA_ERROR, Z_NEED_DICT, Z_MEM_ERROR, truncation
  }
  out.resize(written);
  return decompress_result::ok;
}

// ---------------------------------------------------------------------------

struct gzip_encoder::state {
  z_stream zs{};
};

gzip_encoder::gzip_encoder(int level, std::size_t size_hint)
    : state_(std::make_unique<state>()), level_(level), window_bits_(15) {
  if (level < -1 || level > 9) throw std::invalid_argument("gzip level must be -1..9");
  // As nginx's gzip filter does: shrink the window and the hash table for a
  // known small input. The window need not exceed the input (plus zlib's
  // 262-byte lookahead); each halving of the window halves memLevel's
  // tables too. Windows under 512 bytes are not allowed with the gzip
  // wrapper (zlib rejects windowBits 8 there).
  int mem_level = 8;
  if (size_hint > 0) {
    while (window_bits_ > 9 && size_hint < (std::size_t{1} << (window_bits_ - 1)) - 262) {
      --window_bits_;
      --mem_level;
    }
    mem_level = std::max(mem_level, 1);
  }
  const int rc = deflateInit2(&state_->zs, level, Z_DEFLATED, 16 + window_bits_, mem_level, Z_DEFAULT_STRATEGY);
  if (rc == Z_MEM_ERROR) throw std::bad_alloc();
  if (rc != Z_OK) throw std::invalid_argument("gzip encoder: bad zlib parameters");
}

gzip_encoder::~gzip_encoder() {
  if (state_) deflateEnd(&state_->zs);
}

gzip_encoder::gzip_encoder(gzip_encoder&& other) noexcept
    : state_(std::move(other.state_)),
      level_(other.level_),
      window_bits_(other.window_bits_),
      finished_(other.finished_) {}

gzip_encoder& gzip_encoder::operator=(gzip_encoder&& other) noexcept {
  if (this != &other) {
    if (state_) deflateEnd(&state_->zs);
    state_ = std::move(other.state_);
    level_ = other.level_;
    window_bits_ = other.window_bits_;
    finished_ = other.finished_;
  }
  return *this;
}

void gzip_encoder::run(int flush_mode, std::string& out) {
  // deflate writes into a stack buffer that is appended to `out`, so the
  // caller's string grows only by what was produced.
  char buf[16 * 1024];
  z_stream& zs = state_->zs;
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    const int rc = deflate(&zs, flush_mode);
    assert(rc != Z_STREAM_ERROR);
    out.append(buf, sizeof buf - zs.avail_out);
    if (rc == Z_STREAM_END) return;
    // A partly filled buffer means deflate has consumed all input and
    // emitted all it will for this flush mode (zlib's documented usage);
    // Z_BUF_ERROR means there was nothing to do.
    if (zs.avail_out != 0 || rc != Z_OK) return;
  }
}

void gzip_encoder::write(std::span<const char> in, std::string& out) {
  assert(state_ && !finished_);
  if (!state_ || finished_) return;
  while (!in.empty()) {
    const std::size_t n = std::min(in.size(), max_zlib_chunk);
    state_->zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    state_->zs.avail_in = static_cast<uInt>(n);
    run(Z_NO_FLUSH, out);
    in = in.subspan(n);
  }
  state_->zs.next_in = nullptr;
}

void gzip_encoder::flush(std::string& out) {
  assert(state_ && !finished_);
  if (!state_ || finished_) return;
  run(Z_SYNC_FLUSH, out);
}

void gzip_encoder::finish(std::string& out) {
  assert(state_);
  if (!state_ || finished_) return;
  run(Z_FINISH, out);
  finished_ = true;
}

void gzip_encoder::reset() {
  assert(state_);
  if (!state_) return;
  deflateReset(&state_->zs);
  finished_ = false;
}

// ---------------------------------------------------------------------------

bool is_compressible_type(std::string_view content_type) noexcept {
  const std::string_view media = http::trim_ows(content_type.substr(0, content_type.find(';')));
  const std::size_t slash = media.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == media.size()) return false;
  const std::string_view type = media.substr(0, slash);
  const std::string_view subtype = media.substr(slash + 1);
  if (core::iequals_ascii(type, "text")) return !core::iequals_ascii(subtype, "event-stream");
  // Structured syntax suffixes (RFC 6839): application/problem+json,
  // application/ld+json, application/atom+xml, image/svg+xml, ...
  if (iends_with(subtype, "+json") || iends_with(subtype, "+xml")) return true;
  if (!core::iequals_ascii(type, "application")) return false;  // image/*, audio/*, video/*, font/*, ...
  for (std::string_view s : {"json", "javascript", "x-javascript", "ecmascript", "xml", "yaml", "x-yaml",
                             "x-www-form-urlencoded", "graphql"}) {
    if (core::iequals_ascii(subtype, s)) return true;
  }
  return false;  // application/octet-stream, zip, gzip, pdf, wasm, ...
}

void gzip_acceptance::add(std::string_view accept_encoding) noexcept {
  listed_ = true;
  // A refusal (q=0) sticks: a coding listed again with a weight does not
  // undo it, whichever comes first.
  const auto note = [](int& slot, int q) { slot = q == 0 || slot == 0 ? 0 : std::max(slot, q); };
  while (!accept_encoding.empty()) {
    const std::size_t comma = accept_encoding.find(',');
    std::string_view element = accept_encoding.substr(0, comma);
    accept_encoding = comma == std::string_view::npos ? std::string_view{} : accept_encoding.substr(comma + 1);

    const std::size_t semi = element.find(';');
    const std::string_view coding = http::trim_ows(element.substr(0, semi));
    if (coding.empty()) continue;
    const int q = http::element_weight(semi == std::string_view::npos ? std::string_view{} : element.substr(semi + 1));
    if (q < 0) continue;  // an element with a broken weight is ignored
    if (core::iequals_ascii(coding, "gzip") || core::iequals_ascii(coding, "x-gzip")) note(q_gzip_, q);
    else if (coding == "*") note(q_star_, q);
  }
}

bool gzip_acceptance::accepts() const noexcept {
  if (!listed_) return false;
  // A coding named explicitly takes precedence over "*" (RFC 9110 section
  // 12.5.3), so "gzip;q=0, *" refuses gzip.
  if (q_gzip_ >= 0) return q_gzip_ > 0;
  return q_star_ > 0;
}

bool accepts_gzip(std::string_view accept_encoding) noexcept {
  gzip_acceptance a;
  a.add(accept_encoding);
  return a.accepts();
}

}  // namespace gateway::middleware
