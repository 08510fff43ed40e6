#pragma once
// Request framing: the head (request line + fields) and chunked bodies.
//
// The head is validated by a strict line scanner of our own (RFC 9112
// sections 2-5) and then, unless it is of the common kind llhttp cannot
// refuse once the scan has passed it (a known method, origin-form target, no
// Transfer-Encoding or Upgrade: see parse_head), run through llhttp, which
// must agree; llhttp 8.1 is lenient where RFC 9112 is not (whitespace before
// a colon, obs-fold, bare LF, control characters in values), and the scanner
// is where those are refused.
// Chunked bodies are decoded by llhttp. Content-Length bodies need no parser:
// the connection reads exactly that many bytes into the arena.
//
// Thread: one parser per connection, used only by its coroutine.
#include <llhttp.h>

#include <cstdint>
#include <string_view>

#include "gateway/http/chunked_decoder.hpp"
#include "gateway/http/message.hpp"
#include "gateway/http/syntax.hpp"

namespace gateway::http {

struct head_limits {
  std::size_t max_head = 16 * 1024;
  std::uint32_t max_headers = 100;
  // Longest request-target (414 above it, RFC 9110 section 15.5.15); a
  // request line that does not end within max_head gets 414 too.
  std::size_t max_target = 8 * 1024;
};

struct head_result {
  enum class kind { incomplete, complete, error } what = kind::incomplete;
  std::size_t head_size = 0;     // bytes of the head, including the final CRLF CRLF
  int status = 0;                // for errors: 400, 414, 417, 431, 501 or 505
  std::string_view message;      // for errors: a short static explanation
  bool chunked = false;          // body is chunked (Transfer-Encoding: chunked)
  std::uint64_t content_length = 0;  // when !chunked
  bool expect_continue = false;
};

struct chunk_result {
  enum class kind { need_more, complete, error, too_large } what = kind::need_more;
  std::size_t consumed = 0;      // bytes of `data` used (all of it unless complete/error)
  std::string_view message;
};

class request_parser {
 public:
  request_parser() noexcept;
  // A parser that runs llhttp on every head, the common ones too (see
  // parse_head): for tests that check the two ways agree.
  struct llhttp_always_t {};
  explicit request_parser(llhttp_always_t) noexcept;
  request_parser(const request_parser&) = delete;
  request_parser& operator=(const request_parser&) = delete;

  // Looks for a whole head at the start of `buf`. On `complete`, fills `req`
  // (views into `buf`, header table from `req.headers`' arena). Empty lines
  // before the request line are skipped (RFC 9112 section 2.2) and counted
  // in head_size. A request line that is already complete is checked even
  // while the rest of the head is still to come, so a malformed one (an
  // HTTP/0.9 "GET /") is refused at once rather than timing out.
  //
  // The path is normalized here, once, so routing, auth, the rate limit's
  // exemptions, per-route policy, validation and the backend all see the
  // same path: escapes of unreserved characters decoded ("%61" is "a", RFC
  // 3986 section 6.2.2.2), runs of '/' merged into one (as nginx's
  // merge_slashes; backends commonly merge them, so "//api/x" must meet
  // /api/'s auth), then dot-segments ("." and "..") resolved (section
  // 5.2.4); a path that would climb above "/" is refused (400). Then
  // req.path, req.query and req.target (origin-form: the normalized path
  // and the query) are in the arena; a path needing none of this is not
  // copied. Other escapes stay escaped, with upper-case hex digits (section
  // 6.2.2.1: "%2f" is "%2F"), so every later comparison of paths is one of
  // bytes: "%2F" is not a separator.
  //
  // `scanned`, when given, carries the search for the head's end from one
  // call to the next while the head arrives in pieces: 0 for a new head; on
  // `incomplete` it is set to where the next call, given the same bytes
  // and more after them, may go on, so a head read in many small pieces is
  // not scanned again from its start each time.
  head_result parse_head(std::string_view buf, request& req, const head_limits& limits, std::size_t* scanned = nullptr);

  // Decodes a chunked body that follows the head just parsed, with the
  // strict chunked_decoder (not llhttp, which is lenient about the CRLF
  // after chunk data). Data bytes are appended through `sink(ptr, len)`; at
  // most `max_body` of them. Call repeatedly with new bytes until complete
  // or error.
  using sink_fn = bool (*)(void* ctx, const char* data, std::size_t len);
  chunk_result feed_chunked(std::string_view data, sink_fn sink, void* ctx, std::uint64_t max_body);

 private:
  static int on_headers_complete(llhttp_t* p);
  // llhttp's verdict on a head the scan accepted: complete (and req's
  // method_id and upgrade set) or the error to answer.
  head_result check_with_llhttp(std::string_view head, std::size_t cl_ows_begin, std::size_t cl_ows_end,
                                request& req);

  llhttp_t parser_;
  bool llhttp_always_ = false;
  chunked_decoder chunked_;
  bool chunked_started_ = false;
};

// True if some segment of `path` is "." or ".." (each '.' possibly written
// %2e or %2E). Cheap for the common path: one scan for '.' and '%'.
bool has_dot_segment(std::string_view path) noexcept;

// True if parse_head would rewrite `path` (an escape of an unreserved
// character or with a lower-case hex digit, "//" or a dot-segment in it). A few scans of the path; false for the common path.
bool path_needs_normalizing(std::string_view path) noexcept;

// parse_head's normalization of an absolute path: unreserved escapes
// decoded, other escapes' hex digits upper-cased and runs of '/' merged
// into `scratch`, then the dot-segments
// resolved into `out` (each with room for path.size() bytes). Returns the
// result's length in `out`, or std::string_view::npos if a ".." would climb
// above "/".
std::size_t normalize_path(std::string_view path, char* scratch, char* out) noexcept;

// RFC 3986 section 5.2.4 on an absolute path (starting with '/'), with
// %2e / %2E counted as '.': writes the result to `out` (room for
// path.size() bytes) and returns its length, or std::string_view::npos if a
// ".." would climb above "/".
std::size_t remove_dot_segments(std::string_view path, char* out) noexcept;

}  // namespace gateway::http
