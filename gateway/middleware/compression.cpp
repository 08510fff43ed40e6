#include "gateway/middleware/compression.hpp"

#include <string>

#include "gateway/middleware/gzip_codec.hpp"

namespace gateway::middleware {

namespace {

class decompression final : public http::handler {
 public:
  decompression(http::handler_ptr next, std::uint64_t max_body) : next_(std::move(next)), max_body_(max_body) {}

  asio::awaitable<void> handle(http::exchange& ex) override {
    const http::header_field* ce = ex.req.headers.find("content-encoding");
    if (ce == nullptr || http::iequals(ce->value, "identity")) {
      co_await next_->handle(ex);
      co_return;
    }
    if (ex.req.headers.count("content-encoding") > 1 || ce->value.find(',') != std::string_view::npos) {
      http::respond_text(ex, 415, "Unsupported Content-Encoding");
      co_return;
    }
    // The decompressed body lives exactly as long as the request.
    auto* out = ex.mem().make<std::string>();
    auto r = decompress(ce->value, std::span<const char>(ex.req.body.data(), ex.req.body.size()),
                        static_cast<std::size_t>(max_body_), *out);
    switch (r) {
      case decompress_result::ok:
        break;
      case decompress_result::too_large:
        http::respond_text(ex, 413, "Decompressed body too large");
        co_return;
      case decompress_result::corrupt:
        http::respond_text(ex, 400, "Invalid compressed body");
        co_return;
      case decompress_result::unsupported_encoding:
        http::respond_text(ex, 415, "Unsupported Content-Encoding");
        co_return;
    }
    ex.req.body = *out;
    ex.req.headers.remove("content-encoding");
    co_await next_->handle(ex);
  }

 private:
  http::handler_ptr next_;
  std::uint64_t max_body_;
};

}  // namespace

http::middleware make_request_decompression(std::uint64_t max_body) {
  return [max_body](http::handler_ptr next) -> http::handler_ptr {
    return std::make_unique<decompression>(std::move(next), max_body);
  };
}

}  // namespace gateway::middleware
