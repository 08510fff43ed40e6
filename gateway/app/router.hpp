#pragma once
// The router: exact paths first, then the longest registered prefix ending
// in '/' (deterministic, unlike the seed's map-order choice). Built once at
// start-up; read-only afterwards.
#include <string>
#include <string_view>
#include <vector>

#include "gateway/http/handler.hpp"

namespace gateway::app {

class router final : public http::handler {
 public:
  void add_exact(std::string path, http::handler_ptr h);
  // `prefix` must end in '/'; it also matches the path without the final
  // slash ("/api/" matches "/api").
  void add_prefix(std::string prefix, http::handler_ptr h);
  // Serves paths no route matches (default: a plain 404).
  void set_fallback(http::handler_ptr h) { fallback_ = std::move(h); }

  // The route for `path`, with its pattern, or nullptr.
  http::handler* match(std::string_view path, std::string_view* pattern = nullptr) const noexcept;

  asio::awaitable<void> handle(http::exchange& ex) override;

 private:
  struct route {
    std::string pattern;
    http::handler_ptr target;
  };
  std::vector<route> exact_;
  std::vector<route> prefixes_;  // longest first
  http::handler_ptr fallback_;
};

}  // namespace gateway::app
