#pragma once
// zlib-based building blocks for the compression middleware: bounded
// decompression of request bodies, streamed gzip compression of responses,
// and the header checks that decide whether to compress.
//
// Nothing here throws on the data plane (only gzip_encoder's constructor and
// std::bad_alloc), blocks, or keeps global state; every function may run on
// any thread. A gzip_encoder is used by one request at a time.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "gateway/core/live_counters.hpp"

namespace gateway::middleware {

enum class decompress_result {
  ok,
  too_large,             // the output would exceed `limit` (-> 413)
  corrupt,               // not a valid stream, truncated, or trailing data (-> 400)
  unsupported_encoding,  // not gzip / x-gzip / deflate (-> 415)
  over_budget,           // the shared byte budget refused more output room (-> 503)
};

// The output's share of a byte budget shared with other requests (the
// connections' --body-budget): decompress() takes from `shared` every byte
// of output room before it allocates it, and adds it to `taken`, which the
// caller gives back when the output is let go, whatever the result.
struct decompress_budget {
  core::byte_budget* shared = nullptr;
  std::uint64_t taken = 0;
};

std::string_view to_string(decompress_result r) noexcept;

// Decodes `input` (one request body) for the content coding `encoding`:
// "gzip" or "x-gzip" (RFC 1952; concatenated members are all decoded), or
// "deflate" (the zlib format, RFC 1950, per RFC 9110 section 8.4.1.2, with
// raw deflate accepted as a fallback). Names are case-insensitive; a list
// ("gzip, gzip") is unsupported. Checksums and lengths are verified; empty
// input is corrupt (an empty body is not a gzip stream).
//
// `out` is cleared, then receives the decoded bytes. Decoding stops as soon
// as the output would exceed `limit`: whatever the input's compression ratio,
// `out` never holds more than limit + 1 bytes and its capacity grows to at
// most max(its capacity before the call, limit + 1). It starts from a small
// multiple of the input size and doubles, so a small body costs little. On
// any result but `ok`, `out` is left empty (capacity kept, for reuse).
//
// With `budget`, each growth of `out` is taken from budget->shared first;
// a refusal ends decoding with over_budget (`out` emptied; what was taken
// stays in budget->taken).
decompress_result decompress(std::string_view encoding, std::span<const char> input, std::size_t limit,
                             std::string& out, decompress_budget* budget = nullptr);

// Streaming gzip (RFC 1952) compression of one response at a time:
// write()* then finish(), then reset() to reuse it for the next response
// (reuse keeps the zlib state allocation, ~64-256 KiB). Output is appended
// to the caller's string. Calling write() or flush() after finish() without
// reset() is a programming error (asserted; ignored in release builds).
class gzip_encoder {
 public:
  // `level`: zlib level 0-9, or -1 for zlib's default (6). 1 is the fastest
  // and compresses JSON well; a gateway should spend little CPU here.
  // `size_hint`: the total input size when known (Content-Length), 0 if not.
  // Small responses then get a smaller window and hash table (as nginx
  // does), which cuts the encoder's memory from ~256 KiB to a few KiB; the
  // output stays correct if more than `size_hint` bytes are written.
  // Throws std::invalid_argument for a bad level, std::bad_alloc when zlib
  // cannot allocate its state.
  explicit gzip_encoder(int level = 1, std::size_t size_hint = 0);
  ~gzip_encoder();
  gzip_encoder(gzip_encoder&&) noexcept;
  gzip_encoder& operator=(gzip_encoder&&) noexcept;
  gzip_encoder(const gzip_encoder&) = delete;
  gzip_encoder& operator=(const gzip_encoder&) = delete;

  // Compresses `in`, appending whatever output zlib has ready (possibly
  // nothing: zlib buffers until it has enough for a block).
  void write(std::span<const char> in, std::string& out);
  // Appends everything buffered so far, ending on a byte boundary
  // (Z_SYNC_FLUSH), so a client can decode all input written so far: for
  // streamed responses whose chunks must not wait. Costs a few bytes.
  void flush(std::string& out);
  // Ends the gzip stream (the CRC-32 and length trailer included).
  void finish(std::string& out);
  // Prepares for a new stream with the same level and window.
  void reset();

  bool finished() const noexcept { return finished_; }
  int level() const noexcept { return level_; }
  int window_bits() const noexcept { return window_bits_; }

 private:
  struct state;
  void run(int flush_mode, std::string& out);

  std::unique_ptr<state> state_;  // z_stream must not move: zlib keeps a pointer to it
  int level_;
  int window_bits_;
  bool finished_ = false;
};

// Whether a response with this Content-Type is worth compressing: text/*
// (except text/event-stream, whose events must not wait in a compressor's
// buffer), application/json, application/javascript, application/xml and
// their usual aliases, any "+json" or "+xml" type (image/svg+xml included).
// Not images, audio, video, fonts, archives or other already-compressed data.
// Parameters (";charset=utf-8") are ignored; names are case-insensitive.
bool is_compressible_type(std::string_view content_type) noexcept;

// Whether a request's Accept-Encoding (RFC 9110 section 12.5.3) allows
// gzip. Every Accept-Encoding field line of the request is add()ed, in
// order: the lines form one list (RFC 9110 section 5.3). gzip is accepted
// when "gzip" or "x-gzip" is listed with q > 0, or, when neither is listed,
// "*" with q > 0. An explicit "gzip;q=0" wins over "*", and a q=0 for a
// coding wins over any other weight the list gives it ("gzip, gzip;q=0"
// refuses): the client said it cannot decode it. An empty value means
// "identity only". With no line added, accepts() is false (no header: the
// middleware does not compress). Elements with an invalid qvalue are
// ignored.
class gzip_acceptance {
 public:
  void add(std::string_view accept_encoding) noexcept;
  bool accepts() const noexcept;

 private:
  // Weights in thousandths: -1 not listed, 0 refused, else the highest.
  int q_gzip_ = -1;
  int q_star_ = -1;
  bool listed_ = false;
};

// gzip_acceptance of a single field value.
bool accepts_gzip(std::string_view accept_encoding) noexcept;

}  // namespace gateway::middleware
