#include <charconv>
#include <cstring>
#include <chrono>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

bool is_open_path(std::string_view path) noexcept { return path == "/health" || path == "/metrics"; }

std::optional<std::string_view> query_param(std::string_view query, std::string_view name) noexcept {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

namespace {

std::string_view number(core::arena& mem, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return mem.copy(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
}

class rate_limit_handler final : public http::handler {
 public:
  rate_limit_handler(http::handler_ptr next, rate_limiter& limiter, bool by_api_key, metrics_shard& shard,
                     std::vector<std::string> exempt)
      : next_(std::move(next)), limiter_(limiter), by_api_key_(by_api_key), shard_(shard), exempt_(std::move(exempt)) {}

  asio::awaitable<void> handle(http::exchange& ex) override {
    if (is_exempt(ex.req.path)) {
      co_await next_->handle(ex);
      co_return;
    }
    std::string_view key = ex.ctx.client_ip;
    if (by_api_key_) {
      // Prefixed so an API key can never collide with an IP's bucket.
      std::string_view presented = ex.req.headers.value_of("x-api-key");
      if (presented.empty()) presented = query_param(ex.req.query, "api_key").value_or(std::string_view{});
      if (!presented.empty()) {
        auto* p = static_cast<char*>(ex.mem().allocate(presented.size() + 2, 1));
        p[0] = 'k';
        p[1] = ':';
        std::memcpy(p + 2, presented.data(), presented.size());
        key = std::string_view(p, presented.size() + 2);
      }
    }
    auto d = limiter_.check(key, std::chrono::steady_clock::now());
    if (!d.allowed) {
      shard_.add(metric_counter::rate_limited);
      http::respond_text(ex, 429, "Too Many Requests");
      ex.res.headers.add("Retry-After", number(ex.mem(), static_cast<std::uint64_t>(d.reset.count())));
    } else {
      co_await next_->handle(ex);
    }
    // draft-ietf-httpapi-ratelimit-headers: the client's budget, on every limited route.
    ex.res.headers.add("RateLimit-Limit", number(ex.mem(), d.limit));
    ex.res.headers.add("RateLimit-Remaining", number(ex.mem(), d.remaining));
    ex.res.headers.add("RateLimit-Reset", number(ex.mem(), static_cast<std::uint64_t>(d.reset.count())));
  }

 private:
  // Exact paths (already free of dot-segments: the parser resolved them).
  bool is_exempt(std::string_view path) const noexcept {
    for (const auto& p : exempt_)
      if (p == path) return true;
    return false;
  }

  http::handler_ptr next_;
  rate_limiter& limiter_;
  bool by_api_key_;
  metrics_shard& shard_;
  std::vector<std::string> exempt_;
};

}  // namespace

http::middleware make_rate_limit(rate_limiter& limiter, bool by_api_key, metrics_shard& shard,
                                 std::vector<std::string> exempt) {
  return [&limiter, by_api_key, &shard, exempt = std::move(exempt)](http::handler_ptr next) -> http::handler_ptr {
    return std::make_unique<rate_limit_handler>(std::move(next), limiter, by_api_key, shard, exempt);
  };
}

}  // namespace gateway::middleware
