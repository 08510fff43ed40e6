#pragma once
// An incremental HTTP/1.1 message parser for the load generator (responses)
// and the echo backend (requests). It extracts only what framing and
// keep-alive need (RFC 9112): the start line, Content-Length,
// Transfer-Encoding, Connection and Expect; other header fields are checked
// for syntax and skipped. Bodies are handed back as views, never copied.
//
// Contract:
// - parse(input) consumes a prefix of `input` and returns one event. The
//   caller drops the consumed bytes and, on need_more, calls again with the
//   unconsumed bytes followed by newly read ones: the head is parsed line by
//   line, so an incomplete line stays with the caller (its buffer must hold
//   the longest line it accepts). Body bytes are consumed as they come.
// - Events: head_complete once per message (head fields are then valid until
//   reset()); body_data with `body` set to a view into `input` (one contiguous
//   piece; call again for the rest); complete when the message ends; error
//   (see error()). After complete or error, parse() keeps returning it with
//   nothing consumed until reset().
// - Interim 1xx responses (except 101) are skipped: the caller only sees the
//   final response (RFC 9110 15.2).
// - A response with no length (neither Content-Length nor chunked) ends when
//   the connection closes: its body_data events continue until the caller
//   sees EOF and calls finish_on_eof() (RFC 9112 6.3, rule 8).
// Each parse() call does O(input) work; no allocation; not thread-safe.
// Header-only so the unit tests can use it without linking loadtest_lib.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace loadtest {

enum class message_kind : std::uint8_t { request, response };

enum class parse_status : std::uint8_t { need_more, head_complete, body_data, complete, error };

enum class parse_error : std::uint8_t {
  none,
  bad_start_line,
  bad_header,
  bad_content_length,
  bad_transfer_encoding,
  bad_chunk,
  head_too_large,
};

struct parse_step {
  std::size_t consumed = 0;
  parse_status status = parse_status::need_more;
  std::string_view body;  // set for body_data only
};

class http1_parser {
 public:
  explicit http1_parser(message_kind kind, std::size_t max_head_bytes = 64 * 1024) noexcept
      : kind_(kind), max_head_bytes_(max_head_bytes) {}

  // Ready for the next message on the same connection. Keeps the settings
  // (kind, limit, no-body flag is cleared).
  void reset() noexcept {
    const message_kind kind = kind_;
    const std::size_t limit = max_head_bytes_;
    *this = http1_parser(kind, limit);
  }

  // For a response: the request was HEAD (or otherwise bodiless), so the
  // response has no body whatever its headers say (RFC 9112 6.3, rule 1).
  void set_no_body_expected(bool v) noexcept { no_body_expected_ = v; }

  parse_step parse(std::string_view in) noexcept {
    std::size_t pos = 0;
    // Each pass consumes one line or one body piece, or returns.
    for (;;) {
      switch (state_) {
        case state::start_line:
        case state::headers:
        case state::chunk_size:
        case state::chunk_data_end:
        case state::trailers: {
          const char* base = in.data() + pos;
          const std::size_t left = in.size() - pos;
          const void* nl = left ? std::memchr(base, '\n', left) : nullptr;
          if (nl == nullptr) {
            const bool head_state = state_ == state::start_line || state_ == state::headers ||
                                    state_ == state::trailers;
            if (head_state && head_bytes_ + left > max_head_bytes_) return fail(pos, parse_error::head_too_large);
            if (!head_state && left > max_chunk_line_) return fail(pos, parse_error::bad_chunk);
            return {pos, parse_status::need_more, {}};
          }
          const std::size_t len = static_cast<std::size_t>(static_cast<const char*>(nl) - base);
          std::string_view line(base, len);
          pos += len + 1;
          // RFC 9112 2.2: a recipient may accept a bare LF as a line terminator.
          if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
          if (state_ == state::chunk_size || state_ == state::chunk_data_end) {
            if (!on_chunk_line(line)) return fail(pos, parse_error::bad_chunk);
            continue;
          }
          head_bytes_ += len + 1;
          if (head_bytes_ > max_head_bytes_) return fail(pos, parse_error::head_too_large);
          if (state_ == state::start_line) {
            // RFC 9112 2.2: ignore empty lines before the start line.
            if (line.empty()) continue;
            if (!(kind_ == message_kind::request ? parse_request_line(line) : parse_status_line(line)))
              return fail(pos, parse_error::bad_start_line);
            state_ = state::headers;
            continue;
          }
          if (state_ == state::trailers) {
            if (line.empty()) {
              state_ = state::done;
              continue;
            }
            if (!valid_field_line(line)) return fail(pos, parse_error::bad_header);
            continue;
          }
          // state::headers
          if (line.empty()) {
            if (kind_ == message_kind::response && status_ >= 100 && status_ < 200 && status_ != 101) {
              ++interim_responses_;
              const unsigned interim = interim_responses_;
              const bool no_body = no_body_expected_;
              reset();
              interim_responses_ = interim;
              no_body_expected_ = no_body;
              continue;
            }
            const parse_error e = choose_framing();
            if (e != parse_error::none) return fail(pos, e);
            return {pos, parse_status::head_complete, {}};
          }
          const parse_error e = on_field_line(line);
          if (e != parse_error::none) return fail(pos, e);
          continue;
        }
        case state::body_length:
        case state::chunk_data: {
          if (remaining_ == 0) {
            state_ = state_ == state::body_length ? state::done : state::chunk_data_end;
            continue;
          }
          const std::size_t left = in.size() - pos;
          if (left == 0) return {pos, parse_status::need_more, {}};
          const std::size_t n = remaining_ < left ? static_cast<std::size_t>(remaining_) : left;
          remaining_ -= n;
          body_bytes_ += n;
          const std::string_view piece(in.data() + pos, n);
          return {pos + n, parse_status::body_data, piece};
        }
        case state::body_eof: {
          const std::size_t left = in.size() - pos;
          if (left == 0) return {pos, parse_status::need_more, {}};
          body_bytes_ += left;
          return {in.size(), parse_status::body_data, std::string_view(in.data() + pos, left)};
        }
        case state::done:
          return {pos, parse_status::complete, {}};
        case state::failed:
          return {pos, parse_status::error, {}};
      }
    }
  }

  // The peer closed the connection. True if that completes the message (a
  // response delimited by the close); false if the message was cut short.
  bool finish_on_eof() noexcept {
    if (state_ == state::body_eof) {
      state_ = state::done;
      return true;
    }
    return state_ == state::done;
  }

  bool head_done() const noexcept { return state_ > state::headers && state_ != state::failed; }
  bool complete() const noexcept { return state_ == state::done; }
  parse_error error() const noexcept { return error_; }

  // Head fields: valid after head_complete, until reset().
  int status_code() const noexcept { return status_; }
  int version_minor() const noexcept { return version_minor_; }
  std::string_view method() const noexcept { return {method_.data(), method_len_}; }
  std::optional<std::uint64_t> content_length() const noexcept {
    if (has_content_length_) return content_length_;
    return std::nullopt;
  }
  bool chunked() const noexcept { return chunked_; }
  bool body_until_eof() const noexcept { return until_eof_; }
  bool expect_continue() const noexcept { return expect_continue_; }
  // RFC 9112 9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with
  // "keep-alive". A response delimited by the close, or a 101, cannot persist.
  bool keep_alive() const noexcept {
    if (connection_close_ || until_eof_ || status_ == 101) return false;
    return version_minor_ >= 1 || connection_keep_alive_;
  }
  std::uint64_t body_bytes() const noexcept { return body_bytes_; }
  unsigned interim_responses() const noexcept { return interim_responses_; }

 private:
  enum class state : std::uint8_t {
    start_line, headers, body_length, chunk_size, chunk_data, chunk_data_end, trailers, body_eof, done, failed,
  };
  static constexpr std::size_t max_chunk_line_ = 4096;

  parse_step fail(std::size_t pos, parse_error e) noexcept {
    state_ = state::failed;
    error_ = e;
    return {pos, parse_status::error, {}};
  }

  // RFC 9110 5.6.2: tchar.
  static bool is_tchar(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')) return true;
    switch (c) {
      case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
      case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
      default:
        return false;
    }
  }
  static char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
  static bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (lower(a[i]) != lower(b[i])) return false;
    return true;
  }
  static std::string_view trim_ows(std::string_view v) noexcept {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  }
  // Calls f(token) for each comma-separated list element (RFC 9110 5.6.1),
  // skipping empty ones.
  template <typename F>
  static void for_each_token(std::string_view v, F&& f) noexcept {
    while (!v.empty()) {
      const std::size_t comma = v.find(',');
      const std::string_view item = trim_ows(v.substr(0, comma));
      if (!item.empty()) f(item);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }

  // "HTTP/1.x" exactly; sets version_minor_.
  bool parse_version(std::string_view v) noexcept {
    if (v.size() != 8 || v.substr(0, 7) != "HTTP/1." || v[7] < '0' || v[7] > '9') return false;
    version_minor_ = v[7] - '0';
    return true;
  }

  // RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
  bool parse_status_line(std::string_view line) noexcept {
    if (line.size() < 12 || line[8] != ' ' || !parse_version(line.substr(0, 8))) return false;
    int code = 0;
    for (std::size_t i = 9; i < 12; ++i) {
      if (line[i] < '0' || line[i] > '9') return false;
      code = code * 10 + (line[i] - '0');
    }
    if (code < 100) return false;
    // Some servers omit the SP when the reason is empty; accept that.
    if (line.size() > 12 && line[12] != ' ') return false;
    status_ = code;
    return true;
  }

  // RFC 9112 3: request-line = method SP request-target SP HTTP-version
  bool parse_request_line(std::string_view line) noexcept {
    const std::size_t sp1 = line.find(' ');
    if (sp1 == 0 || sp1 == std::string_view::npos) return false;
    const std::size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
    const std::string_view method = line.substr(0, sp1);
    for (char c : method)
      if (!is_tchar(c)) return false;
    if (!parse_version(line.substr(sp2 + 1))) return false;
    method_len_ = method.size() < method_.size() ? method.size() : method_.size();
    std::memcpy(method_.data(), method.data(), method_len_);
    return true;
  }

  // field-line = field-name ":" OWS field-value OWS; no whitespace before the
  // colon (RFC 9112 5.1) and no obs-fold (RFC 9112 5.2: rejected here).
  static bool split_field(std::string_view line, std::string_view& name, std::string_view& value) noexcept {
    const std::size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    name = line.substr(0, colon);
    for (char c : name)
      if (!is_tchar(c)) return false;
    value = trim_ows(line.substr(colon + 1));
    for (char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
    }
    return true;
  }
  static bool valid_field_line(std::string_view line) noexcept {
    std::string_view n, v;
    return split_field(line, n, v);
  }

  parse_error on_field_line(std::string_view line) noexcept {
    std::string_view name, value;
    if (!split_field(line, name, value)) return parse_error::bad_header;
    switch (name.size()) {
      case 14:  // Content-Length
        if (iequals(name, "content-length")) return on_content_length(value);
        break;
      case 17:  // Transfer-Encoding
        if (iequals(name, "transfer-encoding")) {
          has_transfer_encoding_ = true;
          for_each_token(value, [this](std::string_view t) {
            // Only the final coding decides the framing (RFC 9112 6.3).
            last_coding_chunked_ = iequals(t, "chunked");
          });
        }
        break;
      case 10:  // Connection
        if (iequals(name, "connection")) {
          for_each_token(value, [this](std::string_view t) {
            if (iequals(t, "close")) connection_close_ = true;
            else if (iequals(t, "keep-alive")) connection_keep_alive_ = true;
          });
        }
        break;
      case 6:  // Expect
        if (iequals(name, "expect") && iequals(value, "100-continue")) expect_continue_ = true;
        break;
      default:
        break;
    }
    return parse_error::none;
  }

  // RFC 9110 8.6: a list of identical values may be accepted as one; anything
  // else that is not a single non-negative integer is an error.
  parse_error on_content_length(std::string_view value) noexcept {
    bool ok = true;
    bool any = false;
    for_each_token(value, [&](std::string_view t) {
      std::uint64_t v = 0;
      for (char c : t) {
        if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) {
          ok = false;
          return;
        }
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
      }
      if (has_content_length_ && v != content_length_) ok = false;
      has_content_length_ = true;
      content_length_ = v;
      any = true;
    });
    return ok && any ? parse_error::none : parse_error::bad_content_length;
  }

  // RFC 9112 6.3: message body length.
  parse_error choose_framing() noexcept {
    const bool response = kind_ == message_kind::response;
    if (response && (no_body_expected_ || status_ == 204 || status_ == 304 || status_ == 101 || status_ < 200)) {
      state_ = state::done;
      return parse_error::none;
    }
    if (has_transfer_encoding_) {
      if (last_coding_chunked_) {
        chunked_ = true;
        state_ = state::chunk_size;
        return parse_error::none;
      }
      // A request whose final coding is not chunked cannot be framed (400).
      if (!response) return parse_error::bad_transfer_encoding;
      until_eof_ = true;
      state_ = state::body_eof;
      return parse_error::none;
    }
    if (has_content_length_) {
      remaining_ = content_length_;
      state_ = state::body_length;
      return parse_error::none;
    }
    if (response) {
      until_eof_ = true;
      state_ = state::body_eof;
    } else {
      state_ = state::done;
    }
    return parse_error::none;
  }

  // RFC 9112 7.1: chunk-size [ chunk-ext ] CRLF, and the CRLF after chunk-data.
  bool on_chunk_line(std::string_view line) noexcept {
    if (state_ == state::chunk_data_end) {
      if (!line.empty()) return false;
      state_ = state::chunk_size;
      return true;
    }
    std::uint64_t size = 0;
    std::size_t i = 0;
    for (; i < line.size(); ++i) {
      const char c = line[i];
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else break;
      if (i >= 15) return false;  // over 2^60: refuse rather than overflow
      size = size * 16 + static_cast<std::uint64_t>(d);
    }
    if (i == 0) return false;
    const std::string_view rest = trim_ows(line.substr(i));
    if (!rest.empty() && rest.front() != ';') return false;
    if (size == 0) {
      state_ = state::trailers;
    } else {
      remaining_ = size;
      state_ = state::chunk_data;
    }
    return true;
  }

  message_kind kind_;
  std::size_t max_head_bytes_;
  state state_ = state::start_line;
  parse_error error_ = parse_error::none;
  std::size_t head_bytes_ = 0;
  int status_ = 0;
  int version_minor_ = 1;
  std::array<char, 16> method_{};
  std::size_t method_len_ = 0;
  bool has_content_length_ = false;
  bool has_transfer_encoding_ = false;
  bool last_coding_chunked_ = false;
  bool chunked_ = false;
  bool until_eof_ = false;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  bool expect_continue_ = false;
  bool no_body_expected_ = false;
  unsigned interim_responses_ = 0;
  std::uint64_t content_length_ = 0;
  std::uint64_t remaining_ = 0;
  std::uint64_t body_bytes_ = 0;
};

}  // namespace loadtest
