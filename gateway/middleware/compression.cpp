#include "gateway/middleware/compression.hpp"

#include <llhttp.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "gateway/core/live_counters.hpp"
#include "gateway/http/serializer.hpp"
#include "gateway/http/syntax.hpp"

#include "gateway/middleware/gzip_codec.hpp"

namespace gateway::middleware {

namespace {

// A streamed body, gzipped on the fly. Lives in the request arena.
class gzip_source final : public http::body_source {
 public:
  // `size_hint`: the body's length when the backend sent one, else 0 (the
  // encoder then sizes its window for any length).
  gzip_source(http::body_source* inner, std::size_t size_hint) : inner_(inner), enc_(1, size_hint) {
    out_.reserve(16 * 1024);
  }

  asio::awaitable<std::pair<std::error_code, std::string_view>> next() override {
    for (;;) {
      if (done_) co_return std::pair{std::error_code{}, std::string_view{}};
      out_.clear();
      auto [ec, piece] = co_await inner_->next();
      if (ec) co_return std::pair{ec, std::string_view{}};
      if (piece.empty()) {
        enc_.finish(out_);
        done_ = true;
      } else {
        enc_.write(std::span<const char>(piece.data(), piece.size()), out_);
        enc_.flush(out_);
      }
      if (!out_.empty()) co_return std::pair{std::error_code{}, std::string_view(out_)};
    }
  }

 private:
  http::body_source* inner_;
  gzip_encoder enc_;
  std::string out_;
  bool done_ = false;
};

// Caches must keep the two representations apart (RFC 9110 section 12.5.5):
// Accept-Encoding joins the response's Vary list unless a Vary field line
// already names it or is "*" (which varies on everything). The Vary a
// backend or the CORS layer set (Origin) stays; the token is appended to
// the last Vary field line, so that a client reading only one line sees
// the whole list.
void vary_on_accept_encoding(http::exchange& ex) {
  http::header_field* last = nullptr;
  for (auto& f : ex.res.headers) {
    if (!http::iequals(f.name, "vary")) continue;
    if (http::has_token(f.value, "accept-encoding") || http::has_token(f.value, "*")) return;
    last = &f;
  }
  constexpr std::string_view token = "Accept-Encoding";
  if (last == nullptr) {
    ex.res.headers.add("Vary", token);
    return;
  }
  const std::string_view old = http::trim_ows(last->value);
  if (old.empty()) {
    last->value = token;
    return;
  }
  const std::size_t n = old.size() + 2 + token.size();
  auto* p = static_cast<char*>(ex.mem().allocate(n, 1));
  std::memcpy(p, old.data(), old.size());
  std::memcpy(p + old.size(), ", ", 2);
  std::memcpy(p + old.size() + 2, token.data(), token.size());
  last->value = std::string_view(p, n);
}

// Cache-Control: no-transform forbids intermediaries to change the content
// (RFC 9111 section 5.2.2.6, RFC 9110 section 7.7), gzip included.
bool forbids_transform(const http::header_list& fields) noexcept {
  for (const auto& f : fields)
    if (http::iequals(f.name, "cache-control") && http::has_token(f.value, "no-transform")) return true;
  return false;
}

// The gzip body is another representation with other bytes: a strong
// entity tag (RFC 9110 section 8.8.3) would promise byte-for-byte equality
// with the backend's, so that a client could resume a download of one with
// a range of the other. It is made weak (W/"x", as nginx does), which still
// validates a cached copy (If-None-Match compares weakly) but never matches
// If-Range or a range request's strong comparison. A value that is not an
// entity tag at all is dropped. Accept-Ranges goes too: ranges of the
// gzip body are not served.
void describe_gzip_representation(http::exchange& ex) {
  auto& fields = ex.res.headers;
  fields.remove("accept-ranges");
  bool invalid = false;
  for (auto& f : fields) {
    if (!http::iequals(f.name, "etag")) continue;
    const std::string_view tag = http::trim_ows(f.value);
    if (tag.starts_with("W/")) continue;
    if (!tag.starts_with('"')) {
      invalid = true;
      continue;
    }
    auto* p = static_cast<char*>(ex.mem().allocate(tag.size() + 2, 1));
    std::memcpy(p, "W/", 2);
    std::memcpy(p + 2, tag.data(), tag.size());
    f.value = std::string_view(p, tag.size() + 2);
  }
  if (invalid)
    fields.remove_if([](const http::header_field& f) {
      return http::iequals(f.name, "etag") && !http::trim_ows(f.value).starts_with("W/");
    });
}

// Bodies shorter than this are sent as they are: the gzip header and
// trailer (18 bytes) and the encoder's set-up cost more than they save.
constexpr std::size_t min_compress_size = 256;

// The response's Content-Length, when it has one that parses (a streamed
// body from a backend that sent it); nullopt otherwise (chunked or
// close-delimited).
std::optional<std::uint64_t> declared_length(const http::response& res) noexcept {
  const http::header_field* f = res.headers.find("content-length");
  if (f == nullptr) return std::nullopt;
  const std::string_view v = http::trim_ows(f->value);
  if (v.empty() || v.size() > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (const char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

bool should_compress(const http::exchange& ex) {
  const auto& res = ex.res;
  if (res.no_body || http::status_has_no_body(res.status) || ex.req.method_id == HTTP_HEAD) return false;
  if (res.status < 200 || res.status == 206) return false;
  if (res.headers.find("content-encoding") != nullptr) return false;
  if (res.stream == nullptr) {
    if (res.body.size() < min_compress_size) return false;
  } else if (const auto n = declared_length(res); n && *n < min_compress_size) {
    return false;
  }
  gzip_acceptance accept;
  for (const auto& f : ex.req.headers)
    if (http::iequals(f.name, "accept-encoding")) accept.add(f.value);
  if (!accept.accepts()) return false;
  return is_compressible_type(res.headers.value_of("content-type")) && !forbids_transform(res.headers);
}

void compress_response(http::exchange& ex) {
  auto& res = ex.res;
  if (res.stream == nullptr) {
    auto* out = ex.mem().make<std::string>();
    gzip_encoder enc(1, res.body.size());
    enc.write(std::span<const char>(res.body.data(), res.body.size()), *out);
    enc.finish(*out);
    if (out->size() >= res.body.size()) return;  // not worth it
    res.body = *out;
  } else {
    const auto n = declared_length(res);
    const std::size_t hint = n && *n <= std::numeric_limits<std::size_t>::max() ? static_cast<std::size_t>(*n) : 0;
    res.stream = ex.mem().make<gzip_source>(res.stream, hint);
    res.framing = http::body_framing::chunked;
    res.headers.remove("content-length");
  }
  res.headers.add("Content-Encoding", "gzip");
  describe_gzip_representation(ex);
  vary_on_accept_encoding(ex);
}

// Decodes a compressed request body for the layers after it (validation,
// the proxy). The decoded body lives in the request arena until the request
// is over, so its room is taken from the request's share of --body-budget
// (ex.ctx.body_budget), which the connection gives back at that moment,
// whatever the outcome: after a refusal the output's memory stays in the
// arena as well.
class request_decoding_layer final : public http::layer {
 public:
  explicit request_decoding_layer(std::uint64_t max_body) : max_body_(max_body) {}

  http::step enter(http::exchange& ex, http::layer_state&) override {
    const http::header_field* ce = ex.req.headers.find("content-encoding");
    if (ce == nullptr || http::iequals(ce->value, "identity")) return http::step::next;
    if (ex.req.headers.count("content-encoding") > 1 || ce->value.find(',') != std::string_view::npos) {
      http::respond_text(ex, 415, "Unsupported Content-Encoding");
      return http::step::answered;
    }
    auto* out = ex.mem().make<std::string>();
    core::budget_hold* hold = ex.ctx.body_budget;
    decompress_budget budget{hold != nullptr ? &hold->budget() : nullptr};
    auto r = decompress(ce->value, std::span<const char>(ex.req.body.data(), ex.req.body.size()),
                        static_cast<std::size_t>(max_body_), *out, &budget);
    if (hold != nullptr) hold->adopt(budget.taken);
    switch (r) {
      case decompress_result::ok:
        break;
      case decompress_result::too_large:
        http::respond_text(ex, 413, "Decompressed body too large");
        return http::step::answered;
      case decompress_result::corrupt:
        http::respond_text(ex, 400, "Invalid compressed body");
        return http::step::answered;
      case decompress_result::unsupported_encoding:
        http::respond_text(ex, 415, "Unsupported Content-Encoding");
        return http::step::answered;
      case decompress_result::over_budget:
        // As the connection answers a body that would cross --body-budget.
        http::respond_text(ex, 503, "server busy: too many request bytes in flight, retry");
        ex.res.headers.add("Retry-After", "1");
        return http::step::answered;
    }
    ex.req.body = *out;
    ex.req.headers.remove("content-encoding");
    return http::step::next;
  }

 private:
  std::uint64_t max_body_;
};

// Compresses the response after the inner layers answered.
class response_compression_layer final : public http::layer {
 public:
  http::step enter(http::exchange&, http::layer_state&) override { return http::step::next; }

  void leave(http::exchange& ex, http::layer_state&) override {
    if (should_compress(ex)) compress_response(ex);
  }
};

}  // namespace

http::layer_ptr make_request_decoding(std::uint64_t max_body) {
  return std::make_unique<request_decoding_layer>(max_body);
}

http::layer_ptr make_response_compression() { return std::make_unique<response_compression_layer>(); }

}  // namespace gateway::middleware
