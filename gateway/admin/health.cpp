#include "gateway/admin/health.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string_view>

#include "gateway/core/coarse_clock.hpp"

namespace gateway::admin {

std::size_t format_rfc3339_now(char (&buf)[32]) noexcept {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  return std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

namespace {

// The page's body, formatted once per second per thread (a /health probe
// then costs a copy, not gmtime_r, strftime and snprintf each time).
std::string_view health_body() noexcept {
  thread_local char body[96];
  thread_local std::time_t cached = -1;
  thread_local std::size_t len = 0;
  const std::time_t now = core::coarse_unix_seconds();
  if (now != cached) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char ts[32];
    const std::size_t n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const int k = std::snprintf(body, sizeof body, "{\"status\":\"healthy\",\"timestamp\":\"%.*s\"}",
                                static_cast<int>(n), ts);
    len = k > 0 ? std::min(static_cast<std::size_t>(k), sizeof body - 1) : 0;
    cached = now;
  }
  return {body, len};
}

class health_page final : public http::layer {
 public:
  http::step enter(http::exchange& ex, http::layer_state&) override {
    http::respond_json(ex, 200, health_body());
    return http::step::answered;
  }
};

}  // namespace

http::layer_ptr make_health_page() { return std::make_unique<health_page>(); }

}  // namespace gateway::admin
