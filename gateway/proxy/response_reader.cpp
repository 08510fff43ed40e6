#include "gateway/proxy/response_reader.hpp"

#include "gateway/http/syntax.hpp"

#include <cstring>

namespace gateway::proxy {

namespace {

std::string_view trim_trailing_ows(std::string_view v) noexcept {
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace

std::size_t find_head_end(std::string_view buf, std::size_t from) noexcept {
  std::size_t i = from;
  while (i < buf.size()) {
    const void* nl = std::memchr(buf.data() + i, '\n', buf.size() - i);
    if (nl == nullptr) return 0;
    std::size_t pos = static_cast<std::size_t>(static_cast<const char*>(nl) - buf.data());
    if (pos + 1 < buf.size() && buf[pos + 1] == '\n') return pos + 2;
    if (pos + 2 < buf.size() && buf[pos + 1] == '\r' && buf[pos + 2] == '\n') return pos + 3;
    i = pos + 1;
  }
  return 0;
}

response_reader::response_reader(bool head_request) noexcept : head_request_(head_request) {
  llhttp_init(&parser_, HTTP_RESPONSE, &callbacks());
  parser_.data = this;
}

response_reader::response_reader(bool head_request, llhttp_always_t) noexcept : response_reader(head_request) {
  llhttp_always_ = true;
}

void response_reader::reset() noexcept {
  reason_ = {};
  plain_ = false;
  plain_remaining_ = 0;
  pending_name_ = {};
  extra_bytes_ = 0;
  status_ = 0;
  in_value_ = too_many_fields_ = complete_ = keep_alive_ = faulty_framing_ = false;
  chunked_ = has_content_length_ = until_close_ = no_body_ = false;
  chunks_.reset(UINT64_MAX);
}

response_reader::head_status response_reader::parse_head(std::string_view head, http::header_list& headers,
                                                         std::uint32_t max_fields) {
  reset();
  // llhttp 8.1 accepts bare LF and ends a head at CR LF CR + any byte; the
  // client must never get a head we framed differently (found by fuzzing).
  if (!http::line_ends_are_crlf(head)) return head_status::error;
  head_status plain_result = head_status::error;
  if (!llhttp_always_ && parse_plain_head(head, headers, max_fields, plain_result)) return plain_result;
  // obs-fold (RFC 9112 section 5.2) is refused, as the plain path does; the
  // callbacks below see a continuation only after a non-empty first line.
  for (std::size_t at = head.find("\r\n"); at != std::string_view::npos && at + 2 < head.size();
       at = head.find("\r\n", at + 2))
    if (head[at + 2] == ' ' || head[at + 2] == '\t') return head_status::error;
  llhttp_init(&parser_, HTTP_RESPONSE, &callbacks());
  parser_.data = this;
  headers_ = &headers;
  max_fields_ = max_fields;
  llhttp_errno_t err = llhttp_execute(&parser_, head.data(), head.size());
  headers_ = nullptr;
  if (err == HPE_PAUSED) {
    // Message complete inside the head: no body. The head was cut exactly,
    // so the parser must have stopped at its end.
    if (llhttp_get_error_pos(&parser_) != head.data() + head.size()) return head_status::error;
  } else if (err != HPE_OK) {
    return head_status::error;
  }
  if (status_ == 0) return head_status::error;  // headers not complete: not a whole head
  // A status the client could not parse back (RFC 9110 section 15: 3 digits,
  // 100-599), a reason with control bytes, or a field name that is not a
  // token (RFC 9112 section 5.1: no whitespace before the colon) is a broken
  // backend: 502 rather than passing it on.
  if (status_ < 100 || status_ > 599) return head_status::error;
  for (unsigned char c : reason())
    if ((c < 0x20 && c != '\t') || c == 0x7F) return head_status::error;
  for (const auto& f : headers) {
    if (f.name.empty()) return head_status::error;
    for (unsigned char c : f.name)
      if (!http::is_tchar(c)) return head_status::error;
  }
  // 101 answers an Upgrade we never forward (hop-by-hop): the backend is confused.
  if (status_ == 101) return head_status::error;
  if (status_ >= 100 && status_ < 200) return head_status::interim;
  // A transfer coding other than chunked would reach the client without the
  // Transfer-Encoding that names it (hop-by-hop, not forwarded): refuse.
  std::size_t codings = 0;
  for (const auto& f : headers) {
    if (!http::iequals(f.name, "transfer-encoding")) continue;
    if (!http::iequals(f.value, "chunked")) return head_status::error;
    ++codings;
  }
  // Two fields that each say chunked say it twice, as "chunked, chunked" in
  // one field does (refused above): RFC 9112 section 6.1, a sender never
  // applies chunked twice, and the request side refuses repeats too.
  if (codings > 1) return head_status::error;
  // Transfer-Encoding in an HTTP/1.0 response: RFC 9112 section 6.1 says its
  // framing is faulty; the body is read as chunked and the connection is
  // closed after it, never reused for another request.
  faulty_framing_ = codings != 0 && parser_.http_major == 1 && parser_.http_minor == 0;
  return head_status::ok;
}

bool response_reader::parse_plain_head(std::string_view head, http::header_list& headers, std::uint32_t max_fields,
                                       head_status& result) {
  // Anything this does not read exactly as llhttp would goes to llhttp:
  // HEAD responses, HTTP/1.0, a control byte other than HTAB, CR and LF,
  // 1xx/204/304 and statuses outside 200-599, a reason that is empty or
  // starts with whitespace, obs-fold, a field with an empty value (llhttp
  // reports none), Connection, Proxy-Connection, Transfer-Encoding and
  // Upgrade (llhttp acts on them), a Content-Length that is repeated, has
  // tabs around it or more than 18 digits, or none at all.
  if (head_request_ || head.size() < 17 || head.substr(0, 9) != "HTTP/1.1 ") return false;
  // With no control byte but HTAB, CR and LF anywhere (one pass here), every
  // byte of the reason and of each field value below is one they may hold.
  if (http::has_control_byte(head)) return false;
  const char d0 = head[9], d1 = head[10], d2 = head[11];
  if (d0 < '2' || d0 > '5' || d1 < '0' || d1 > '9' || d2 < '0' || d2 > '9' || head[12] != ' ') return false;
  const int status = (d0 - '0') * 100 + (d1 - '0') * 10 + (d2 - '0');
  if (status == 204 || status == 304) return false;
  // The line ends are CRLF only (checked before), so the first CR ends a line.
  const auto line_end = [&](std::size_t from) {
    const void* cr = std::memchr(head.data() + from, '\r', head.size() - from);
    return cr == nullptr ? head.size() : static_cast<std::size_t>(static_cast<const char*>(cr) - head.data());
  };
  std::size_t eol = line_end(13);
  const std::string_view reason = head.substr(13, eol - 13);
  if (reason.empty() || reason.front() == ' ' || reason.front() == '\t') return false;

  const std::size_t first_field = headers.size();
  const auto give_up = [&] {
    headers.truncate(first_field);
    return false;
  };
  bool has_length = false;
  std::uint64_t length = 0;
  std::size_t pos = eol + 2;
  while (pos < head.size() && head[pos] != '\r') {
    eol = line_end(pos);
    const std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    // The name's tchars, then its colon, in one pass.
    std::size_t colon = 0;
    while (colon < line.size() && http::is_tchar(static_cast<unsigned char>(line[colon]))) ++colon;
    if (colon == 0 || colon == line.size() || line[colon] != ':') return give_up();
    const std::string_view name = line.substr(0, colon);
    const std::string_view raw = line.substr(colon + 1);
    const std::string_view value = http::trim_ows(raw);
    if (value.empty()) return give_up();
    switch (name.size()) {
      case 7:
        if (http::iequals(name, "upgrade")) return give_up();
        break;
      case 10:
        if (http::iequals(name, "connection")) return give_up();
        break;
      case 14:
        if (http::iequals(name, "content-length")) {
          if (has_length || raw.find('\t') != std::string_view::npos) return give_up();
          std::string_view digits = value;
          while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
          if (digits.size() > 18) return give_up();
          for (char c : digits) {
            if (c < '0' || c > '9') return give_up();
            length = length * 10 + static_cast<std::uint64_t>(c - '0');
          }
          has_length = true;
        }
        break;
      case 16:
        if (http::iequals(name, "proxy-connection")) return give_up();
        break;
      case 17:
        if (http::iequals(name, "transfer-encoding")) return give_up();
        break;
      default:
        break;
    }
    if (headers.size() >= max_fields) return give_up();  // over the limit: llhttp's path refuses it
    headers.add(name, value);
  }
  if (!has_length || pos + 2 != head.size()) return give_up();

  plain_ = true;
  status_ = status;
  reason_ = reason;
  has_content_length_ = true;
  plain_remaining_ = length;
  if (length == 0) complete_ = keep_alive_ = true;
  result = head_status::ok;
  return true;
}

response_reader::decoded response_reader::decode(char* dest, const char* data, std::size_t len) noexcept {
  decoded out;
  if (complete_) {
    extra_bytes_ += len;
    return out;
  }
  if (plain_) {
    // Content-Length counted down; an HTTP/1.1 response without Connection
    // keeps the connection (as llhttp_should_keep_alive says for it).
    const std::size_t n = len < plain_remaining_ ? len : static_cast<std::size_t>(plain_remaining_);
    if (n != 0 && dest != data) std::memmove(dest, data, n);
    plain_remaining_ -= n;
    out.size = n;
    if (plain_remaining_ == 0) {
      complete_ = keep_alive_ = true;
      extra_bytes_ += len - n;
    }
    return out;
  }
  out_ = dest;
  out_size_ = 0;
  if (chunked_) {
    const http::chunked_decoder::result r = chunks_.feed(std::string_view(data, len), &take_chunk_data, this);
    out.size = out_size_;
    out_ = nullptr;
    if (r.what == http::chunked_decoder::status::complete) {
      complete_ = true;
      keep_alive_ = !faulty_framing_ && llhttp_should_keep_alive(&parser_) != 0;
      extra_bytes_ += len - r.consumed;
    } else if (r.what != http::chunked_decoder::status::need_more) {
      out.error = true;
    }
    return out;
  }
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  out.size = out_size_;
  out_ = nullptr;
  if (err == HPE_PAUSED && complete_) {
    extra_bytes_ += static_cast<std::size_t>(data + len - llhttp_get_error_pos(&parser_));
  } else if (err != HPE_OK) {
    out.error = true;
  }
  return out;
}

bool response_reader::finish_at_eof() noexcept {
  if (complete_) return true;
  if (!until_close_) return false;
  llhttp_errno_t err = llhttp_finish(&parser_);
  (void)err;  // HPE_PAUSED from on_message_complete
  keep_alive_ = false;
  return complete_;
}

int response_reader::on_status(llhttp_t* p, const char* at, std::size_t len) {
  auto* self = static_cast<response_reader*>(p->data);
  self->reason_ = std::string_view(at, len);
  return 0;
}

int response_reader::on_header_field(llhttp_t* p, const char* at, std::size_t len) {
  auto* self = static_cast<response_reader*>(p->data);
  // Trailer fields (RFC 9112 section 7.1.2) come through here during the
  // body; they are not forwarded (the client's chunked framing is ours).
  if (self->headers_ == nullptr) return 0;
  self->pending_name_ = std::string_view(at, len);
  self->in_value_ = false;
  return 0;
}

int response_reader::on_header_value(llhttp_t* p, const char* at, std::size_t len) {
  auto* self = static_cast<response_reader*>(p->data);
  // A second piece of the same value is an obs-fold continuation (the head
  // is parsed in one call, so spans are never split otherwise).
  if (self->headers_ == nullptr) return 0;  // a trailer field
  if (self->in_value_) return -1;
  if (self->headers_->size() >= self->max_fields_) {
    self->too_many_fields_ = true;
    return -1;
  }
  self->in_value_ = true;
  self->headers_->add(self->pending_name_, trim_trailing_ows(std::string_view(at, len)));
  return 0;
}

int response_reader::on_headers_complete(llhttp_t* p) {
  auto* self = static_cast<response_reader*>(p->data);
  self->status_ = p->status_code;
  const int s = self->status_;
  self->no_body_ = self->head_request_ || (s >= 100 && s < 200) || s == 204 || s == 304;
  self->chunked_ = !self->no_body_ && (p->flags & F_CHUNKED) != 0;
  self->has_content_length_ = (p->flags & F_CONTENT_LENGTH) != 0;
  self->until_close_ = !self->no_body_ && !self->chunked_ && !self->has_content_length_;
  // 1: no body follows, whatever Content-Length or Transfer-Encoding say: a
  // response to HEAD (RFC 9110 section 9.3.2) and 1xx, 204 and 304 responses
  // (RFC 9112 section 6.3, items 1-2; a 304 may carry the Content-Length of
  // the 200 it stands for, RFC 9110 section 8.6).
  return self->no_body_ ? 1 : 0;
}

bool response_reader::take_chunk_data(void* self, const char* data, std::size_t len) noexcept {
  auto* r = static_cast<response_reader*>(self);
  char* to = r->out_ + r->out_size_;
  if (to != data) std::memmove(to, data, len);
  r->out_size_ += len;
  return true;
}

int response_reader::on_body(llhttp_t* p, const char* at, std::size_t len) {
  auto* self = static_cast<response_reader*>(p->data);
  if (self->out_ == nullptr) return -1;  // body bytes inside the head: impossible
  char* to = self->out_ + self->out_size_;
  if (to != at) std::memmove(to, at, len);
  self->out_size_ += len;
  return 0;
}

int response_reader::on_message_complete(llhttp_t* p) {
  auto* self = static_cast<response_reader*>(p->data);
  self->complete_ = true;
  self->keep_alive_ = !self->faulty_framing_ && llhttp_should_keep_alive(p) != 0;
  return HPE_PAUSED;
}

const llhttp_settings_t& response_reader::callbacks() noexcept {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t x;
    llhttp_settings_init(&x);
    x.on_status = &response_reader::on_status;
    x.on_header_field = &response_reader::on_header_field;
    x.on_header_value = &response_reader::on_header_value;
    x.on_headers_complete = &response_reader::on_headers_complete;
    x.on_body = &response_reader::on_body;
    x.on_message_complete = &response_reader::on_message_complete;
    return x;
  }();
  return s;
}

}  // namespace gateway::proxy
