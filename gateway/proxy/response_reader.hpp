#pragma once
// Reading one backend response (RFC 9112): the head, parsed with llhttp
// (HTTP_RESPONSE), and the body, decoded in place so that a fixed buffer is
// enough however large the body is. No I/O here: the caller reads bytes and
// feeds them. The plain response (HTTP/1.1, 2xx-5xx with a body, framed by
// one Content-Length, no Connection, Transfer-Encoding or Upgrade field) is
// read without llhttp, to the same result: tests/unit/proxy/parts_test.cpp and
// the response head fuzz target compare the two ways.
//
// Framing follows llhttp (RFC 9112 section 6.3): no body for HEAD requests
// and for 1xx/204/304; chunked; Content-Length; otherwise until close. A
// chunked body is decoded by http::chunked_decoder, which refuses chunk
// data not followed by CRLF and the other lenient forms llhttp takes: a
// backend whose chunks are malformed gets its connection closed instead of
// reused with a framing the two sides read differently.
// Ambiguous framing (Content-Length with Transfer-Encoding, repeated
// Content-Length) and obs-fold are errors, i.e. 502 (RFC 9112 section 5.2
// lets a proxy reject obs-fold in a response).
//
// Thread: one reader per in-flight response, on its worker's thread.
#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/http/chunked_decoder.hpp"
#include "gateway/http/header_list.hpp"
#include "gateway/http/message.hpp"

namespace gateway::proxy {

// Offset just past the blank line that ends a head in `buf` (CRLF CRLF; a
// bare LF is found too so that llhttp can refuse it), or 0 if there is none
// yet. `from` lets a caller resume the scan where it stopped.
std::size_t find_head_end(std::string_view buf, std::size_t from = 0) noexcept;

class response_reader {
 public:
  explicit response_reader(bool head_request) noexcept;
  // A reader that runs llhttp on every response, the plain ones too (see
  // parse_head): for tests that check the two ways agree.
  struct llhttp_always_t {};
  response_reader(bool head_request, llhttp_always_t) noexcept;
  response_reader(const response_reader&) = delete;
  response_reader& operator=(const response_reader&) = delete;

  enum class head_status { ok, interim, error };

  // Parses a complete head (exactly the bytes up to find_head_end). Header
  // fields are appended to `headers` as views into `head`, which must stay
  // valid until the response is done. `interim`: a 1xx other than 101, to be
  // skipped; call again with the next head (the reader resets itself).
  head_status parse_head(std::string_view head, http::header_list& headers, std::uint32_t max_fields);

  int status() const noexcept { return status_; }
  std::string_view reason() const noexcept { return reason_; }
  // The body is over already (no body, or Content-Length: 0).
  bool complete() const noexcept { return complete_; }
  bool chunked() const noexcept { return chunked_; }
  bool has_content_length() const noexcept { return has_content_length_; }
  bool until_close() const noexcept { return until_close_; }
  bool no_body() const noexcept { return no_body_; }

  struct decoded {
    std::size_t size = 0;  // body bytes now at dest[0, size)
    bool error = false;    // malformed framing (e.g. a bad chunk size line)
  };
  // Feeds raw body bytes `data[0, len)`. Decoded body bytes are moved to
  // `dest`, which may alias `data` but must not come after it. When the
  // message completes, bytes after its end are counted in extra_bytes().
  decoded decode(char* dest, const char* data, std::size_t len) noexcept;

  // The backend closed the connection: completes a close-delimited body,
  // returns false when the body was cut short.
  bool finish_at_eof() noexcept;

  // After complete(): may the connection carry another request? (keep-alive
  // and nothing unexpected after the message.)
  bool reusable() const noexcept { return complete_ && keep_alive_ && extra_bytes_ == 0; }
  std::size_t extra_bytes() const noexcept { return extra_bytes_; }

 private:
  static int on_status(llhttp_t* p, const char* at, std::size_t len);
  static int on_header_field(llhttp_t* p, const char* at, std::size_t len);
  static int on_header_value(llhttp_t* p, const char* at, std::size_t len);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t len);
  static int on_message_complete(llhttp_t* p);
  void reset() noexcept;
  // The plain response read without llhttp: HTTP/1.1, a final status
  // with a body, a Content-Length and no field llhttp reads beyond it. True
  // when the head was of that kind (then `result` is set and the body is
  // counted down by decode()); false, with `headers` as it was, otherwise.
  bool parse_plain_head(std::string_view head, http::header_list& headers, std::uint32_t max_fields,
                        head_status& result);
  static const llhttp_settings_t& callbacks() noexcept;

  static bool take_chunk_data(void* self, const char* data, std::size_t len) noexcept;

  llhttp_t parser_;
  http::chunked_decoder chunks_;
  http::header_list* headers_ = nullptr;
  std::uint32_t max_fields_ = 0;
  std::string_view reason_;
  std::string_view pending_name_;
  char* out_ = nullptr;        // decode(): where the next body bytes go
  std::size_t out_size_ = 0;
  std::size_t extra_bytes_ = 0;
  std::uint64_t plain_remaining_ = 0;  // a plain response's body bytes still to come
  int status_ = 0;
  bool head_request_;
  bool llhttp_always_ = false;
  bool plain_ = false;         // this response was read by parse_plain_head
  bool in_value_ = false;      // a value was already reported for pending_name_
  bool too_many_fields_ = false;
  bool complete_ = false;
  bool keep_alive_ = false;
  bool faulty_framing_ = false;  // Transfer-Encoding in an HTTP/1.0 response: close after it
  bool chunked_ = false;
  bool has_content_length_ = false;
  bool until_close_ = false;
  bool no_body_ = false;
};

}  // namespace gateway::proxy
