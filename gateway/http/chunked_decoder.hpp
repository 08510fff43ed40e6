#pragma once
// A strict decoder for the chunked transfer coding (RFC 9112 section 7.1).
// llhttp 8.1 accepts chunk data that is not followed by CRLF, which lets a
// request carry a second one past a lenient hop; this decoder refuses it,
// and bare LF, oversized chunk sizes, whitespace after a size that is not
// followed by ";" or the line end, control bytes in extensions and endless
// trailer sections too. Used for request bodies and for backend response
// bodies (proxy/response_reader).
#include <cstdint>
#include <string_view>

namespace gateway::http {

class chunked_decoder {
 public:
  enum class status { need_more, complete, error, too_large };
  struct result {
    status what = status::need_more;
    std::size_t consumed = 0;  // bytes of the input used (all of it for need_more)
    std::string_view message;  // for errors
  };
  // `sink(ctx, data, len)` receives decoded bytes; returning false stops
  // decoding with an error.
  using sink_fn = bool (*)(void* ctx, const char* data, std::size_t len);

  explicit chunked_decoder(std::uint64_t max_body = UINT64_MAX) noexcept : max_body_(max_body) {}
  void reset(std::uint64_t max_body) noexcept {
    *this = chunked_decoder(max_body);
  }
  result feed(std::string_view in, sink_fn sink, void* ctx) noexcept;
  std::uint64_t body_bytes() const noexcept { return total_; }

  static constexpr std::size_t max_line = 4096;      // a chunk-size line with its extensions
  static constexpr std::size_t max_trailer = 16384;  // the whole trailer section

 private:
  enum class state : std::uint8_t {
    size,
    size_ws,
    ext,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer_start,
    trailer,
    trailer_lf,
    final_lf,
    done
  };
  std::uint64_t max_body_;
  std::uint64_t total_ = 0;
  std::uint64_t remaining_ = 0;  // of the current chunk
  std::uint64_t size_ = 0;
  std::size_t line_ = 0;         // bytes in the current size or trailer line
  std::size_t trailer_ = 0;
  std::uint8_t digits_ = 0;
  bool trailer_colon_ = false;  // the current trailer line has its ':'
  state st_ = state::size;
};

}  // namespace gateway::http
