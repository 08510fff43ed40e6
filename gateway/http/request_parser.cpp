#include "gateway/http/request_parser.hpp"

#include <array>
#include <cstring>

#include "gateway/core/ascii.hpp"

namespace gateway::http {

namespace {

// request-target bytes (RFC 3986 section 2 plus '%'): visible ASCII only,
// never a fragment.
constexpr bool target_byte_rule(unsigned char c) noexcept {
  return c > 0x20 && c < 0x7F && c != '#' && c != '"' && c != '<' && c != '>' && c != '\\' &&
         c != '^' && c != '`' && c != '{' && c != '|' && c != '}';
}
// The rule as a table: one load per byte of the target.
constexpr std::array<bool, 256> target_byte_table = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = target_byte_rule(static_cast<unsigned char>(c));
  return t;
}();
constexpr bool is_target_byte(unsigned char c) noexcept { return target_byte_table[c]; }

head_result fail(int status, std::string_view msg) {
  head_result r;
  r.what = head_result::kind::error;
  r.status = status;
  r.message = msg;
  return r;
}

// 1 for a "." segment, 2 for "..", 0 otherwise; a '.' may be written %2e
// or %2E (RFC 3986 section 2.3: percent-encoded unreserved characters are
// the characters themselves).
int dot_segment_kind(std::string_view seg) noexcept {
  int dots = 0;
  for (std::size_t i = 0; i < seg.size();) {
    if (dots == 2) return 0;
    if (seg[i] == '.') {
      ++i;
    } else if (seg[i] == '%' && seg.size() - i >= 3 && seg[i + 1] == '2' && (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
      i += 3;
    } else {
      return 0;
    }
    ++dots;
  }
  return dots;
}

// The request line, checked: method SP request-target SP HTTP-version
// (RFC 9112 section 3). False with `err` set when it is not one.
struct request_line {
  std::string_view method, target, version;
};

bool scan_request_line(std::string_view line, const head_limits& limits, request_line& out, head_result& err) {
  std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) {
    err = fail(400, "malformed request line");
    return false;
  }
  out.method = line.substr(0, sp1);
  for (unsigned char c : out.method) {
    if (!is_tchar(c)) {
      err = fail(400, "invalid method");
      return false;
    }
  }
  std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) {
    // Also an HTTP/0.9 request ("GET /"), which has no version.
    err = fail(400, "malformed request line");
    return false;
  }
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  out.version = line.substr(sp2 + 1);
  if (out.target.size() > limits.max_target) {
    err = fail(414, "request target too long");
    return false;
  }
  for (unsigned char c : out.target) {
    if (!is_target_byte(c)) {
      err = fail(400, "invalid request target");
      return false;
    }
  }
  const std::string_view v = out.version;
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') {
    err = fail(400, "invalid HTTP version");
    return false;
  }
  if (v[5] != '1') {
    err = fail(505, "only HTTP/1.x is supported");
    return false;
  }
  return true;
}

// A head that is not complete yet: is what has arrived already enough to
// refuse it? A complete request line is checked as it is; a partial one
// only for a target over the limit. At max_head, a request line that has
// not ended is a target too long (414), anything else a head too large (431).
// `buf` starts at the request line; `received` counts every byte buffered.
bool refuse_partial_head(std::string_view buf, std::size_t received, const head_limits& limits, head_result& err) {
  const std::size_t eol = buf.find("\r\n");
  if (eol != std::string_view::npos) {
    request_line rl;
    if (!scan_request_line(buf.substr(0, eol), limits, rl, err)) return true;
    if (received >= limits.max_head) {
      err = fail(431, "request head too large");
      return true;
    }
    return false;
  }
  const std::size_t sp1 = buf.find(' ');
  if (sp1 != std::string_view::npos) {
    const std::size_t sp2 = buf.find(' ', sp1 + 1);
    const std::size_t target_len = (sp2 == std::string_view::npos ? buf.size() : sp2) - sp1 - 1;
    if (target_len > limits.max_target) {
      err = fail(414, "request target too long");
      return true;
    }
  }
  if (received >= limits.max_head) {
    err = sp1 == std::string_view::npos ? fail(431, "request head too large") : fail(414, "request line too long");
    return true;
  }
  return false;
}

// The methods whose heads need no second opinion from llhttp (see
// parse_head), as llhttp numbers them; -1 for any other method.
int common_method_id(std::string_view m) noexcept {
  switch (m.size()) {
    case 3:
      if (m == "GET") return HTTP_GET;
      if (m == "PUT") return HTTP_PUT;
      break;
    case 4:
      if (m == "POST") return HTTP_POST;
      if (m == "HEAD") return HTTP_HEAD;
      break;
    case 5:
      if (m == "PATCH") return HTTP_PATCH;
      break;
    case 6:
      if (m == "DELETE") return HTTP_DELETE;
      break;
    case 7:
      if (m == "OPTIONS") return HTTP_OPTIONS;
      break;
    default:
      break;
  }
  return -1;
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

bool path_needs_normalizing(std::string_view path) noexcept {
  if (path.find("//") != std::string_view::npos || has_dot_segment(path)) return true;
  // An escape of an unreserved character, or one with a lower-case hex
  // digit ("%20" or "%2F" alone needs nothing).
  for (std::size_t i = path.find('%'); i != std::string_view::npos; i = path.find('%', i + 1)) {
    if (path.size() - i < 3) break;
    const int hi = core::hex_digit_value(path[i + 1]), lo = core::hex_digit_value(path[i + 2]);
    if (hi < 0 || lo < 0) continue;
    if (core::is_unreserved(static_cast<char>(hi * 16 + lo))) return true;
    if (path[i + 1] >= 'a' || path[i + 2] >= 'a') return true;
  }
  return false;
}

std::size_t normalize_path(std::string_view path, char* scratch, char* out) noexcept {
  // Escapes of unreserved characters decoded (RFC 3986 section 6.2.2.2),
  // the others' hex digits in upper case (6.2.2.1), runs of '/' merged,
  // into `scratch`; then the dot-segments resolved.
  std::size_t n = 0;
  for (std::size_t i = 0; i < path.size();) {
    const char c = path[i];
    if (c == '%' && path.size() - i >= 3) {
      const int hi = core::hex_digit_value(path[i + 1]), lo = core::hex_digit_value(path[i + 2]);
      if (hi >= 0 && lo >= 0) {
        const char decoded = static_cast<char>(hi * 16 + lo);
        if (core::is_unreserved(decoded)) {
          scratch[n++] = decoded;
        } else {
          static constexpr char upper[] = "0123456789ABCDEF";
          scratch[n++] = '%';
          scratch[n++] = upper[hi];
          scratch[n++] = upper[lo];
        }
        i += 3;
        continue;
      }
    }
    if (c == '/' && n > 0 && scratch[n - 1] == '/') {
      ++i;
      continue;
    }
    scratch[n++] = c;
    ++i;
  }
  return remove_dot_segments(std::string_view(scratch, n), out);
}

bool has_dot_segment(std::string_view path) noexcept {
  // Two vectorised searches (find_first_of searches the set for every byte).
  if (std::memchr(path.data(), '.', path.size()) == nullptr && std::memchr(path.data(), '%', path.size()) == nullptr)
    return false;
  while (!path.empty()) {
    const std::size_t slash = path.find('/');
    if (dot_segment_kind(path.substr(0, slash)) != 0) return true;
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return false;
}

std::size_t remove_dot_segments(std::string_view path, char* out) noexcept {
  // Segment by segment: "." is dropped, ".." drops the last segment written
  // (and is refused when there is none), anything else is copied. A path
  // ending in a dot-segment keeps its final '/' ("/a/b/.." is "/a/").
  std::size_t n = 0;
  std::size_t i = path.empty() || path.front() != '/' ? 0 : 1;
  for (;;) {
    const std::size_t slash = path.find('/', i);
    const bool last = slash == std::string_view::npos;
    const std::string_view seg = path.substr(i, last ? std::string_view::npos : slash - i);
    const int kind = dot_segment_kind(seg);
    if (kind == 2) {
      if (n == 0) return std::string_view::npos;
      while (out[--n] != '/') {
      }
    }
    if (kind == 0) {
      out[n++] = '/';
      std::memcpy(out + n, seg.data(), seg.size());
      n += seg.size();
    } else if (last) {
      out[n++] = '/';
    }
    if (last) break;
    i = slash + 1;
  }
  return n;
}

request_parser::request_parser(llhttp_always_t) noexcept : request_parser() { llhttp_always_ = true; }

request_parser::request_parser() noexcept {
  static const llhttp_settings_t callbacks = [] {
    llhttp_settings_t x;
    llhttp_settings_init(&x);
    x.on_headers_complete = &request_parser::on_headers_complete;
    return x;
  }();
  (void)settings;
  llhttp_init(&parser_, HTTP_REQUEST, &callbacks);
  // HTTP/1.2 and later 1.x are served as 1.1 (RFC 9110 section 2.5); our
  // scan has checked the version's form, so llhttp need not know them.
  parser_.lenient_flags |= LENIENT_VERSION;
  parser_.data = this;
}

int request_parser::on_headers_complete(llhttp_t*) {
  // Stop at the end of the head: the connection decides how to read the body.
  return HPE_PAUSED;
}

head_result request_parser::parse_head(std::string_view buf, request& req, const head_limits& limits,
                                       std::size_t* scanned) {
  // RFC 9112 section 2.2: ignore empty lines before the request-line.
  std::size_t start = 0;
  while (start + 1 < buf.size() && buf[start] == '\r' && buf[start + 1] == '\n' && start < 8) start += 2;

  // Find the end of the head, refusing bare LF and bare CR on the way
  // (RFC 9112 section 2.2 allows accepting bare LF; a proxy must not, since
  // the next hop may frame the message differently). `resume` is the first
  // byte whose meaning more bytes could still change: everything before it
  // is checked and holds no end of head.
  std::size_t limit = buf.size() < limits.max_head ? buf.size() : limits.max_head;
  std::size_t end = 0;
  std::size_t resume = start;
  if (scanned != nullptr && *scanned > start && *scanned <= limit) resume = *scanned;
  {
    std::size_t i = resume;
    while (i < limit) {
      const void* nl = std::memchr(buf.data() + i, '\n', limit - i);
      const void* cr = std::memchr(buf.data() + i, '\r', limit - i);
      if (nl == nullptr && cr == nullptr) {
        resume = limit;  // no line end in [i, limit)
        break;
      }
      std::size_t pos_nl = nl ? static_cast<const char*>(nl) - buf.data() : limit;
      std::size_t pos_cr = cr ? static_cast<const char*>(cr) - buf.data() : limit;
      if (pos_nl < pos_cr) return fail(400, "bare LF in request head");
      // pos_cr < pos_nl: a CR must be followed by LF.
      resume = pos_cr;                 // until the two bytes after this line end are known
      if (pos_cr + 1 >= limit) break;  // need more bytes
      if (buf[pos_cr + 1] != '\n') return fail(400, "bare CR in request head");
      if (pos_cr + 3 < limit && buf[pos_cr + 2] == '\r' && buf[pos_cr + 3] == '\n') {
        end = pos_cr + 4;
        break;
      }
      if (pos_cr + 2 < limit && buf[pos_cr + 2] == '\r' && pos_cr + 3 >= limit) break;  // need more
      // The next line starts here and not with CR LF; when none of it is
      // here yet, resume stays at this line end.
      i = pos_cr + 2;
      if (i < limit) resume = i;
    }
  }
  if (scanned != nullptr) *scanned = end == 0 ? resume : 0;
  if (end == 0) {
    head_result err;
    if (refuse_partial_head(buf.substr(start), buf.size(), limits, err)) return err;
    return {};
  }

  std::string_view head = buf.substr(start, end - start);

  // Request line: method SP request-target SP HTTP-version (RFC 9112 section 3).
  std::size_t line_end = head.find("\r\n");
  request_line rl;
  {
    head_result err;
    if (!scan_request_line(head.substr(0, line_end), limits, rl, err)) return err;
  }
  const std::string_view method = rl.method;
  const std::string_view target = rl.target;
  const std::string_view version = rl.version;

  req.method = method;
  req.target = target;
  req.version_major = 1;
  req.version_minor = static_cast<std::uint8_t>(version[7] - '0');
  if (req.version_minor > 1) req.version_minor = 1;  // 1.2+ is treated as 1.1 (RFC 9110 section 2.5)

  std::string_view with_mark;  // the query with its '?', if any
  std::string_view target_authority;  // absolute-form's authority
  if (target.front() == '/') {
    auto q = target.find('?');
    req.path = target.substr(0, q);
    req.query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
    if (q != std::string_view::npos) with_mark = target.substr(q);
  } else if (target == "*") {
    if (method != "OPTIONS") return fail(400, "asterisk-form is only for OPTIONS");
    req.path = target;
    req.query = {};
  } else if (method == "CONNECT") {
    return fail(501, "CONNECT is not supported");
  } else {
    // absolute-form (RFC 9112 section 3.2.2): accept http/https URIs and
    // route on the path. The authority ends at the first '/' or '?' (RFC
    // 3986 section 3.2), so "http://a?q/x" has an empty path (taken as "/")
    // and the query "q/x", the same query request_writer forwards.
    auto scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) return fail(400, "invalid request target");
    const std::string_view scheme = target.substr(0, scheme_end);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) return fail(400, "request target scheme is not http");
    auto authority_end = target.find_first_of("/?", scheme_end + 3);
    target_authority =
        target.substr(scheme_end + 3, authority_end == std::string_view::npos ? std::string_view::npos
                                                                              : authority_end - (scheme_end + 3));
    // RFC 9110 section 4.2.4: userinfo in an http(s) URI is an error.
    if (target_authority.find('@') != std::string_view::npos) return fail(400, "userinfo in request target");
    if (target_authority.empty()) return fail(400, "empty authority in request target");
    std::string_view rest =
        authority_end == std::string_view::npos ? std::string_view("/") : target.substr(authority_end);
    auto q = rest.find('?');
    req.path = q == 0 ? std::string_view("/") : rest.substr(0, q);
    req.query = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
    if (q != std::string_view::npos) with_mark = rest.substr(q);
  }
  if (req.path.front() == '/' && path_needs_normalizing(req.path)) {
    // The normalized path and the query, in the arena: from here on the
    // request is the one with that path (origin-form).
    auto* scratch = static_cast<char*>(req.headers.memory().allocate(req.path.size(), 1));
    auto* p = static_cast<char*>(req.headers.memory().allocate(req.path.size() + with_mark.size(), 1));
    const std::size_t n = normalize_path(req.path, scratch, p);
    if (n == std::string_view::npos) return fail(400, "path climbs above the root");
    if (!with_mark.empty()) std::memcpy(p + n, with_mark.data(), with_mark.size());
    req.path = std::string_view(p, n);
    req.target = std::string_view(p, n + with_mark.size());
    req.query = with_mark.empty() ? std::string_view{} : std::string_view(p + n + 1, with_mark.size() - 1);
  }

  // Header fields (RFC 9112 section 5): name ":" OWS value OWS CRLF.
  req.headers.clear();
  std::size_t pos = line_end + 2;
  std::size_t host_count = 0, cl_count = 0, te_count = 0, upgrade_count = 0;
  std::string_view host_value;  // the (first) Host field's value
  std::string_view cl_value, te_value;
  // Connection's options, from every Connection field of the head.
  bool connection_close = false, connection_keep_alive = false;
  std::size_t cl_ows_begin = 0, cl_ows_end = 0;  // the Content-Length value's trailing OWS, in head
  bool expect_continue = false;
  while (pos < head.size() - 2) {
    std::size_t eol = head.find("\r\n", pos);
    std::string_view field = head.substr(pos, eol - pos);
    pos = eol + 2;
    if (field.front() == ' ' || field.front() == '\t') return fail(400, "obsolete line folding");
    // The name's tchars and the colon after them, in one pass; when that
    // fails, the same errors as checking the colon first, then the name.
    std::size_t colon = 0;
    while (colon < field.size() && is_tchar(static_cast<unsigned char>(field[colon]))) ++colon;
    if (colon == 0 || colon == field.size() || field[colon] != ':') {
      const std::size_t c = field.find(':');
      if (c == std::string_view::npos || c == 0) return fail(400, "malformed header field");
      return fail(400, "invalid header name (whitespace before colon?)");
    }
    std::string_view name = field.substr(0, colon);
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
        if (iequals(name, "host") && host_count++ == 0) host_value = value;
        break;
      case 6:
        if (iequals(name, "expect")) {
          // RFC 9110 section 10.1.1: a 100-continue expectation in an
          // HTTP/1.0 request is ignored.
          if (iequals(value, "100-continue"))
            expect_continue = req.version_minor == 1;
          else return fail(417, "unsupported expectation");
        }
        break;
      case 7:
        if (iequals(name, "upgrade")) ++upgrade_count;
        break;
      case 10:
        if (iequals(name, "connection")) {
          connection_close = connection_close || has_token(value, "close");
          connection_keep_alive = connection_keep_alive || has_token(value, "keep-alive");
        }
        break;
      case 14:
        if (iequals(name, "content-length")) {
          ++cl_count;
          cl_value = value;
          cl_ows_begin = static_cast<std::size_t>(value.data() + value.size() - head.data());
          cl_ows_end = pos - 2;
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
  // What the client sent, as opposed to what the middleware adds later.
  req.headers.mark_received();

  // Host (RFC 9112 section 3.2): exactly one in HTTP/1.1, at most one in 1.0.
  if (req.version_minor == 1 && host_count != 1)
    return fail(400, host_count == 0 ? "missing Host header" : "duplicate Host header");
  if (host_count > 1) return fail(400, "duplicate Host header");
  // A host and port, or an IP literal in brackets ('/' and '@' are not tchars).
  const auto host_byte = [](unsigned char c) { return is_tchar(c) || c == ':' || c == '[' || c == ']'; };
  if (host_count == 1) {
    if (host_value.empty()) return fail(400, "empty Host header");
    for (unsigned char c : host_value)
      if (!host_byte(c)) return fail(400, "invalid Host header");
  }
  // absolute-form: the target's authority is the request's host and the
  // Host field is ignored (RFC 9112 section 3.2.2), so routing, the log and
  // the backend (Host, X-Forwarded-Host) all see the one the client named
  // in the request line. The field keeps its place in the head.
  if (!target_authority.empty()) {
    for (unsigned char c : target_authority)
      if (!host_byte(c)) return fail(400, "invalid authority in request target");
    bool replaced = false;
    for (auto& f : req.headers) {
      if (!iequals(f.name, "host")) continue;
      f.value = target_authority;  // the one Host field (more were refused above)
      replaced = true;
      break;
    }
    if (!replaced) req.headers.add("Host", target_authority);
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
    // RFC 9112 section 6.3: when chunked is not the final coding the length
    // cannot be determined: 400, and the connection closes. Chunked last
    // after codings we do not decode (or with parameters): 501.
    const std::size_t comma = te_value.rfind(',');
    std::string_view last = trim_ows(comma == std::string_view::npos ? te_value : te_value.substr(comma + 1));
    last = trim_ows(last.substr(0, last.find(';')));
    if (!iequals(last, "chunked")) return fail(400, "Transfer-Encoding does not end in chunked");
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

  // A head of the common kind has nothing left for llhttp to refuse: a
  // method it knows, an origin-form target of bytes its URL states take,
  // field names of tchars and values it accepts (checked above), no
  // Transfer-Encoding and no Upgrade (the fields it reads beyond
  // Content-Length and Connection, whose values it takes as they are), and
  // so no upgrade. The method is its number. tests/unit/http/request_parser
  // and the head fuzz target check that llhttp agrees on every such head.
  const int common_id = common_method_id(method);
  if (!llhttp_always_ && common_id >= 0 && target.front() == '/' && te_count == 0 && upgrade_count == 0) {
    req.method_id = common_id;
    req.upgrade = false;
  } else {
    const head_result checked = check_with_llhttp(head, cl_ows_begin, cl_ows_end, req);
    if (checked.what == head_result::kind::error) return checked;
  }
  req.was_chunked = r.chunked;

  // Persistence (RFC 9112 section 9.3); "close" in any Connection field
  // ends the connection after this request (section 9.6), also beside
  // "keep-alive".
  if (req.version_minor == 1)
    req.keep_alive = !connection_close;
  else
    req.keep_alive = connection_keep_alive && !connection_close;

  chunked_started_ = false;
  return r;
}

head_result request_parser::check_with_llhttp(std::string_view head, std::size_t cl_ows_begin,
                                              std::size_t cl_ows_end, request& req) {
  // llhttp must agree that this is a well-formed head. It refuses a tab
  // after a Content-Length's digits, which RFC 9110 section 5.5 allows as
  // OWS: that OWS (already checked and trimmed above) is left out of what it
  // reads, which a streaming parser takes as the same head without it.
  llhttp_reset(&parser_);
  llhttp_errno_t err = HPE_OK;
  if (cl_ows_end > cl_ows_begin && head.substr(cl_ows_begin, cl_ows_end - cl_ows_begin).find('\t') != std::string_view::npos) {
    err = llhttp_execute(&parser_, head.data(), cl_ows_begin);
    if (err == HPE_OK) err = llhttp_execute(&parser_, head.data() + cl_ows_end, head.size() - cl_ows_end);
  } else {
    err = llhttp_execute(&parser_, head.data(), head.size());
  }
  if (err != HPE_PAUSED) {
    if (err == HPE_INVALID_METHOD) return fail(501, "unknown method");
    return fail(400, "malformed request head");
  }
  if (parser_.method > HTTP_SOURCE || parser_.method == HTTP_CONNECT) return fail(501, "unsupported method");
  req.method_id = parser_.method;
  // RFC 9110 section 7.8: a server must ignore Upgrade in an HTTP/1.0
  // request (and section 15.2: never send a 1xx to an HTTP/1.0 client).
  req.upgrade = parser_.upgrade != 0 && req.version_minor >= 1;
  head_result ok;
  ok.what = head_result::kind::complete;
  return ok;
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
