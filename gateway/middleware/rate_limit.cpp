#include <charconv>
#include <chrono>
#include <cstring>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

std::string_view number(core::arena& mem, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return mem.copy(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
}

// draft-ietf-httpapi-ratelimit-headers: the client's budget, on every
// limited response.
void add_budget_headers(http::exchange& ex, const rate_limit_decision& d) {
  ex.res.headers.add("RateLimit-Limit", number(ex.mem(), d.limit));
  ex.res.headers.add("RateLimit-Remaining", number(ex.mem(), d.remaining));
  ex.res.headers.add("RateLimit-Reset", number(ex.mem(), static_cast<std::uint64_t>(d.reset.count())));
}

class rate_limit_layer final : public http::layer {
 public:
  rate_limit_layer(rate_limiter& limiter, bool by_api_key, metrics_shard& shard)
      : limiter_(limiter), by_api_key_(by_api_key), shard_(shard) {}

  http::step enter(http::exchange& ex, http::layer_state& state) override {
    std::string_view key = ex.ctx.client_ip;
    if (by_api_key_) {
      // Prefixed so an API key can never collide with an IP's bucket.
      std::string_view presented = ex.req.headers.value_of("x-api-key");
      if (presented.empty()) presented = http::query_param(ex.req.query, "api_key").value_or(std::string_view{});
      if (!presented.empty()) {
        auto* p = static_cast<char*>(ex.mem().allocate(presented.size() + 2, 1));
        p[0] = 'k';
        p[1] = ':';
        std::memcpy(p + 2, presented.data(), presented.size());
        key = std::string_view(p, presented.size() + 2);
      }
    }
    const auto& d = state.emplace<rate_limit_decision>(limiter_.check(key, std::chrono::steady_clock::now()));
    if (d.allowed) return http::step::next;
    core::bump(shard_.stats().rate_limited);
    http::respond_text(ex, 429, "Too Many Requests");
    ex.res.headers.add("Retry-After", number(ex.mem(), static_cast<std::uint64_t>(d.reset.count())));
    add_budget_headers(ex, d);
    return http::step::answered;
  }

  void leave(http::exchange& ex, http::layer_state& state) override {
    add_budget_headers(ex, state.get<rate_limit_decision>());
  }

 private:
  rate_limiter& limiter_;
  bool by_api_key_;
  metrics_shard& shard_;
};

}  // namespace

http::layer_ptr make_rate_limit(rate_limiter& limiter, bool by_api_key, metrics_shard& shard) {
  return std::make_unique<rate_limit_layer>(limiter, by_api_key, shard);
}

}  // namespace gateway::middleware
