#include "gateway/http/chunked_decoder.hpp"

#include "gateway/http/syntax.hpp"

namespace gateway::http {

namespace {
int hex_value(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
bool is_ctl(unsigned char c) noexcept { return (c < 0x20 && c != '\t') || c == 0x7F; }
}  // namespace

chunked_decoder::result chunked_decoder::feed(std::string_view in, sink_fn sink, void* ctx) noexcept {
  auto fail = [](std::size_t at, std::string_view msg) { return result{status::error, at, msg}; };
  std::size_t i = 0;
  const std::size_t n = in.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(in[i]);
    switch (st_) {
      case state::size: {
        int h = hex_value(c);
        if (h >= 0) {
          // 16 hex digits overflow nothing, but no body is that large: cap at 15.
          if (++digits_ > 15) return fail(i, "chunk size too long");
          size_ = size_ * 16 + static_cast<unsigned>(h);
          ++i;
          break;
        }
        if (digits_ == 0) return fail(i, "missing chunk size");
        if (c == ';') {
          st_ = state::ext;
          line_ = 0;
          break;  // the ext state consumes this byte
        }
        if (c == ' ' || c == '\t') {
          // BWS (RFC 9112 section 7.1.1): only before ";" (taken here
          // before the line end as well), never before other bytes.
          st_ = state::size_ws;
          line_ = 0;
          break;
        }
        if (c == '\r') {
          st_ = state::size_lf;
          ++i;
          break;
        }
        return fail(i, "invalid chunk size");
      }
      case state::size_ws:
        if (c == ' ' || c == '\t') {
          if (++line_ > max_line) return fail(i, "chunk extension too long");
          ++i;
          break;
        }
        if (c == ';') {
          st_ = state::ext;
          break;  // the ext state consumes this byte
        }
        if (c == '\r') {
          st_ = state::size_lf;
          ++i;
          break;
        }
        return fail(i, "invalid chunk size");
      case state::ext:
        if (c == '\r') {
          st_ = state::size_lf;
          ++i;
          break;
        }
        if (is_ctl(c)) return fail(i, "control character in chunk extension");
        if (++line_ > max_line) return fail(i, "chunk extension too long");
        ++i;
        break;
      case state::size_lf:
        if (c != '\n') return fail(i, "bare CR after chunk size");
        ++i;
        digits_ = 0;
        if (size_ == 0) {
          st_ = state::trailer_start;
        } else {
          if (total_ + size_ > max_body_) return result{status::too_large, i, "body too large"};
          remaining_ = size_;
          st_ = state::data;
        }
        size_ = 0;
        break;
      case state::data: {
        std::size_t take = n - i < remaining_ ? n - i : static_cast<std::size_t>(remaining_);
        if (!sink(ctx, in.data() + i, take)) return fail(i, "body could not be stored");
        total_ += take;
        remaining_ -= take;
        i += take;
        if (remaining_ == 0) st_ = state::data_cr;
        break;
      }
      case state::data_cr:
        if (c != '\r') return fail(i, "chunk data not followed by CRLF");
        st_ = state::data_lf;
        ++i;
        break;
      case state::data_lf:
        if (c != '\n') return fail(i, "chunk data not followed by CRLF");
        st_ = state::size;
        ++i;
        break;
      case state::trailer_start:
        if (c == '\r') {
          st_ = state::final_lf;
          ++i;
          break;
        }
        if (c == ' ' || c == '\t') return fail(i, "obsolete line folding in trailer");
        if (c == ':') return fail(i, "empty trailer field name");
        st_ = state::trailer;
        trailer_colon_ = false;
        break;
      case state::trailer:
        if (c == '\r') {
          // A trailer line is a field line (RFC 9112 section 7.1.2): name ":" value.
          if (!trailer_colon_) return fail(i, "trailer line without a colon");
          st_ = state::trailer_lf;
          ++i;
          break;
        }
        if (is_ctl(c)) return fail(i, "control character in trailer");
        if (!trailer_colon_) {
          if (c == ':') trailer_colon_ = true;
          else if (!is_tchar(c)) return fail(i, "invalid trailer field name");
        }
        if (++trailer_ > max_trailer) return fail(i, "trailer section too large");
        ++i;
        break;
      case state::trailer_lf:
        if (c != '\n') return fail(i, "bare CR in trailer");
        st_ = state::trailer_start;
        ++i;
        break;
      case state::final_lf:
        if (c != '\n') return fail(i, "bare CR at end of chunked body");
        st_ = state::done;
        return result{status::complete, i + 1, {}};
      case state::done:
        return result{status::complete, i, {}};
    }
  }
  return result{status::need_more, n, {}};
}

}  // namespace gateway::http
