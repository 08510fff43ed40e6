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

class health_handler final : public http::handler {
 public:
  asio::awaitable<void> handle(http::exchange& ex) override {
    char ts[32];
    std::size_t n = format_rfc3339_now(ts);
    char body[96];
    int len = std::snprintf(body, sizeof body, "{\"status\":\"healthy\",\"timestamp\":\"%.*s\"}",
                            static_cast<int>(n), ts);
    http::respond_json(ex, 200, std::string_view(body, static_cast<std::size_t>(len)));
    co_return;
  }
};

}  // namespace

http::handler_ptr make_health_handler() { return std::make_unique<health_handler>(); }

}  // namespace gateway::admin
