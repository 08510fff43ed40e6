#include <array>
#include <cstring>
#include <random>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

// A client's id is kept when it is short and plain (no spaces, quotes or
// control bytes that could confuse a log reader or a downstream parser).
bool sane_request_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128) return false;
  for (unsigned char c : id) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
              c == '.' || c == ':' || c == '/' || c == '+' || c == '=';
    if (!ok) return false;
  }
  return true;
}

class request_id_layer final : public http::layer {
 public:
  explicit request_id_layer(unsigned worker) {
    // 64 random bits per worker, then a counter: unique within the process
    // and unlikely to collide across restarts, with no lock and no syscall.
    std::random_device rd;
    prefix_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ (static_cast<std::uint64_t>(worker) << 56);
    write_hex(prefix_hex_, prefix_);
  }

  http::step enter(http::exchange& ex, http::layer_state&) override {
    std::string_view id = ex.req.headers.value_of("x-request-id");
    if (!sane_request_id(id)) {
      auto* p = static_cast<char*>(ex.mem().allocate(32, 1));
      std::memcpy(p, prefix_hex_, 16);
      write_hex(p + 16, ++counter_);
      id = std::string_view(p, 32);
      // The backend sees the id the client will see.
      ex.req.headers.set("X-Request-Id", id);
    } else if (ex.req.headers.count("x-request-id") > 1) {
      // The first field's id is kept; any other X-Request-Id field goes, so
      // the backend sees the one id the client and the log see.
      ex.req.headers.set("X-Request-Id", id);
    }
    ex.ctx.request_id = id;
    return http::step::next;
  }

  void leave(http::exchange& ex, http::layer_state&) override { ex.res.headers.set("X-Request-Id", ex.ctx.request_id); }

 private:
  // 16 lowercase hex digits of v, most significant first, two a step.
  static void write_hex(char* out, std::uint64_t v) noexcept {
    static constexpr auto pairs = [] {
      std::array<char, 512> t{};
      constexpr char hex[] = "0123456789abcdef";
      for (int i = 0; i < 256; ++i) {
        t[2 * i] = hex[i >> 4];
        t[2 * i + 1] = hex[i & 15];
      }
      return t;
    }();
    for (int i = 7; i >= 0; --i, v >>= 8) std::memcpy(out + 2 * i, &pairs[2 * (v & 0xFF)], 2);
  }

  std::uint64_t prefix_ = 0;
  char prefix_hex_[16] = {};  // prefix_ in hex, the first half of every id
  std::uint64_t counter_ = 0;
};

}  // namespace

http::layer_ptr make_request_id(unsigned worker) { return std::make_unique<request_id_layer>(worker); }

}  // namespace gateway::middleware
