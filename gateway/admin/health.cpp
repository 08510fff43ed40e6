#include "gateway/admin/health.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace gateway::admin {

std::size_t format_rfc3339_now(char (&buf)[32]) noexcept {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  return std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

namespace {

class health_page final : public http::layer {
 public:
  http::step enter(http::exchange& ex, http::layer_state&) override {
    char ts[32];
    std::size_t n = format_rfc3339_now(ts);
    char body[96];
    int len = std::snprintf(body, sizeof body, "{\"status\":\"healthy\",\"timestamp\":\"%.*s\"}",
                            static_cast<int>(n), ts);
    http::respond_json(ex, 200, std::string_view(body, static_cast<std::size_t>(len)));
    return http::step::answered;
  }
};

}  // namespace

http::layer_ptr make_health_page() { return std::make_unique<health_page>(); }

}  // namespace gateway::admin
