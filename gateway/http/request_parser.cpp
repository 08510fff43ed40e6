#include "gateway/http/request_parser.hpp"

#include <array>
#include <cstring>

namespace gateway::http {

namespace {

// Field value bytes (RFC 9110 section 5.5): VCHAR, obs-text, SP, HTAB.
constexpr bool is_field_value_byte(unsigned char c) noexcept {
  return c == '\t' || (c >= 0x20 && c != 0x7F);
}

// request-target bytes (RFC 3986 section 2 plus '%'): visible ASCII only,
// never a fragment.
constexpr bool is_target_byte(unsigned char c) noexcept {
  return c > 0x20 && c < 0x7F && c != '#' && c != '"' && c != '<' && c != '>' && c != '\\' &&
         c != '^' && c != '`' && c != '{' && c != '|' && c != '}';
}

head_result fail(int status, std::string_view msg) {
  head_result r;
  r.what = head_result::kind::error;
  r.status = status;
  r.message = msg;
  return r;
}

const llhttp_settings_t& settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t x;
    llhttp_settings_init(&x);
    return x;
  }();
  return s;
}

}  // namespace

request_parser::request_parser() noexcept {
  static const llhttp_settings_t callbacks = [] {
    llhttp_settings_t x;
    llhttp_settings_init(&x);
    x.on_headers_complete = &request_parser::on_headers_complete;
    return x;
  }();
  (void)settings;
  llhttp_init(&parser_, HTTP_REQUEST, &callbacks);
  parser_.data = this;
}

int request_parser::on_headers_complete(llhttp_t*) {
  // Stop at the end of the head: the connection decides how to read the body.
  return HPE_PAUSED;
}

head_result request_parser::parse_head(std::string_view buf, request& req, const head_limits& limits) {
  // RFC 9112 section 2.2: ignore empty lines before the request-line.
  std::size_t start = 0;
  while (start + 1 < buf.size() && buf[start] == '\r' && buf[start + 1] == '\n' && start < 8) start += 2;

  // Find the end of the head, refusing bare LF and bare CR on the way
  // (RFC 9112 section 2.2 allows accepting bare LF; a proxy must not, since
  // the next hop may frame the message differently).
  std::size_t limit = buf.size() < limits.max_head ? buf.size() : limits.max_head;
  std::size_t end = 0;
  {
    std::size_t i = start;
    while (i < limit) {
      const void* nl = std::memchr(buf.data() + i, '\n', limit - i);
      const void* cr = std::memchr(buf.data() + i, '\r', limit - i);
      if (nl == nullptr && cr == nullptr) break;
      std::size_t pos_nl = nl ? static_cast<const char*>(nl) - buf.data() : limit;
      std::size_t pos_cr = cr ? static_cast<const char*>(cr) - buf.data() : limit;
      if (pos_nl < pos_cr) return fail(400, "bare LF in request head");
      // pos_cr < pos_nl: a CR must be followed by LF.
      if (pos_cr + 1 >= limit) break;  // need more bytes
      if (buf[pos_cr + 1] != '\n') return fail(400, "bare CR in request head");
      if (pos_cr + 3 < limit && buf[pos_cr + 2] == '\r' && buf[pos_cr + 3] == '\n') {
        end = pos_cr + 4;
        break;
      }
      if (pos_cr + 2 < limit && buf[pos_cr + 2] == '\r' && pos_cr + 3 >= limit) break;  // need more
      i = pos_cr + 2;
    }
  }
  if (end == 0) {
    if (buf.size() >= limits.max_head) return fail(431, "request head too large");
    return {};
  }

  std::string_view head = buf.substr(start, end - start);

  // Request line: method SP request-target SP HTTP-version (RFC 9112 section 3).
  std::size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return fail(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  for (unsigned char c : method)
    if (!is_tchar(c)) return fail(400, "invalid method");
  std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return fail(400, "malformed request line");
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  for (unsigned char c : target)
    if (!is_target_byte(c)) return fail(400, "invalid request target");
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9')
    return fail(400, "invalid HTTP version");
  if (version[5] != '1') return fail(505, "only HTTP/1.x is supported");

  req.method = method;
  req.target = target;
  req.version_major = 1;
  req.version_minor = static_cast<std::uint8_t>(version[7] - '0');
  if (req.version_minor > 1) req.version_minor = 1;  // 1.2+ is treated as 1.1 (RFC 9110 section 2.5)

  if (target.front() == '/') {
    auto q = target.find('?');
    req.path = target.substr(0, q);
    req.query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  } else if (target == "*") {
    if (method != "OPTIONS") return fail(400, "asterisk-form is only for OPTIONS");
    req.path = target;
    req.query = {};
  } else if (method == "CONNECT") {
    return fail(501, "CONNECT is not supported");
  } else {
    // absolute-form (RFC 9112 section 3.2.2): accept http/https URIs and route on the path.
    auto scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) return fail(400, "invalid request target");
    auto path_start = target.find('/', scheme_end + 3);
    std::string_view rest = path_start == std::string_view::npos ? std::string_view("/") : target.substr(path_start);
    auto q = rest.find('?');
    req.path = rest.substr(0, q);
    req.query = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
  }

  // Header fields (RFC 9112 section 5): name ":" OWS value OWS CRLF.
  req.headers.clear();
  std::size_t pos = line_end + 2;
  std::size_t host_count = 0, cl_count = 0, te_count = 0;
  std::string_view cl_value, te_value, connection_value;
  bool expect_continue = false;
  while (pos < head.size() - 2) {
    std::size_t eol = head.find("\r\n", pos);
    std::string_view field = head.substr(pos, eol - pos);
    pos = eol + 2;
    if (field.front() == ' ' || field.front() == '\t') return fail(400, "obsolete line folding");
    std::size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail(400, "malformed header field");
    std::string_view name = field.substr(0, colon);
    for (unsigned char c : name)
      if (!is_tchar(c)) return fail(400, "invalid header name (whitespace before colon?)");
    std::string_view value = field.substr(colon + 1);
    for (unsigned char c : value)
      if (!is_field_value_byte(c)) return fail(400, "control character in header value");
    value = trim_ows(value);
    if (req.headers.size() >= limits.max_headers) return fail(431, "too many header fields");
    req.headers.add(name, value);

    switch (name.size()) {
      case 14:
      case 17:
        // Content_Length / Transfer_Encoding: a backend that maps '_' to '-'
        // (CGI-style) would frame the body differently from us.
        if (name.find('_') != std::string_view::npos &&
            (iequals(name, "content_length") || iequals(name, "transfer_encoding")))
          return fail(400, "framing header look-alike with '_'");
        break;
      default:
        break;
    }
    switch (name.size()) {
      case 4:
        if (iequals(name, "host")) ++host_count;
        break;
      case 6:
        if (iequals(name, "expect")) {
          if (iequals(value, "100-continue")) expect_continue = true;
          else return fail(417, "unsupported expectation");
        }
        break;
      case 10:
        if (iequals(name, "connection")) connection_value = value;
        break;
      case 14:
        if (iequals(name, "content-length")) {
          ++cl_count;
          cl_value = value;
        }
        break;
      case 17:
        if (iequals(name, "transfer-encoding")) {
          ++te_count;
          te_value = value;
        }
        break;
      default:
        break;
    }
  }

  // Host (RFC 9112 section 3.2): exactly one in HTTP/1.1, at most one in 1.0.
  if (req.version_minor == 1 && host_count != 1)
    return fail(400, host_count == 0 ? "missing Host header" : "duplicate Host header");
  if (host_count > 1) return fail(400, "duplicate Host header");
  if (host_count == 1) {
    for (unsigned char c : req.headers.value_of("host"))
      if (!(is_tchar(c) || c == ':' || c == '[' || c == ']') || c == '/' || c == '@')
        return fail(400, "invalid Host header");
  }

  head_result r;
  r.what = head_result::kind::complete;
  r.head_size = end;
  r.expect_continue = expect_continue;

  // Message body length (RFC 9112 section 6.3). Anything ambiguous is refused:
  // a proxy that frames a message differently from the next hop is how
  // requests get smuggled.
  if (te_count > 0) {
    if (req.version_minor == 0) return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (cl_count > 0) return fail(400, "both Content-Length and Transfer-Encoding");
    if (te_count > 1) return fail(400, "repeated Transfer-Encoding");
    if (!iequals(te_value, "chunked")) return fail(501, "unsupported transfer coding");
    r.chunked = true;
  } else if (cl_count > 0) {
    if (cl_count > 1) return fail(400, "repeated Content-Length");
    if (cl_value.empty() || cl_value.size() > 19) return fail(400, "invalid Content-Length");
    std::uint64_t n = 0;
    for (char c : cl_value) {
      if (c < '0' || c > '9') return fail(400, "invalid Content-Length");
      n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    r.content_length = n;
  }

  // llhttp must agree that this is a well-formed head.
  llhttp_reset(&parser_);
  llhttp_errno_t err = llhttp_execute(&parser_, head.data(), head.size());
  if (err != HPE_PAUSED) {
    if (err == HPE_INVALID_METHOD) return fail(501, "unknown method");
    return fail(400, "malformed request head");
  }
  if (parser_.method > HTTP_SOURCE || parser_.method == HTTP_CONNECT) return fail(501, "unsupported method");
  req.method_id = parser_.method;
  req.was_chunked = r.chunked;
  req.upgrade = parser_.upgrade != 0;

  // Persistence (RFC 9112 section 9.3).
  if (req.version_minor == 1) req.keep_alive = !has_token(connection_value, "close");
  else req.keep_alive = has_token(connection_value, "keep-alive");

  chunked_started_ = false;
  return r;
}

chunk_result request_parser::feed_chunked(std::string_view data, sink_fn sink, void* ctx, std::uint64_t max_body) {
  if (!chunked_started_) {
    chunked_.reset(max_body);
    chunked_started_ = true;
  }
  auto r = chunked_.feed(data, sink, ctx);
  chunk_result out;
  out.consumed = r.consumed;
  out.message = r.message;
  switch (r.what) {
    case chunked_decoder::status::need_more: out.what = chunk_result::kind::need_more; break;
    case chunked_decoder::status::complete: out.what = chunk_result::kind::complete; break;
    case chunked_decoder::status::too_large: out.what = chunk_result::kind::too_large; break;
    case chunked_decoder::status::error: out.what = chunk_result::kind::error; break;
  }
  return out;
}

}  // namespace gateway::http
