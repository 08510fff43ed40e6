#include "gateway/app/router.hpp"

#include <algorithm>
#include <stdexcept>

namespace gateway::app {

void router::add_exact(std::string path, http::handler_ptr h) {
  exact_.push_back({std::move(path), std::move(h)});
}

void router::add_prefix(std::string prefix, http::handler_ptr h) {
  if (prefix.empty() || prefix.back() != '/') throw std::invalid_argument("route prefix must end in '/': " + prefix);
  prefixes_.push_back({std::move(prefix), std::move(h)});
  std::stable_sort(prefixes_.begin(), prefixes_.end(),
                   [](const route& a, const route& b) { return a.pattern.size() > b.pattern.size(); });
}

http::handler* router::match(std::string_view path, std::string_view* pattern) const noexcept {
  for (const auto& r : exact_) {
    if (r.pattern == path) {
      if (pattern) *pattern = r.pattern;
      return r.target.get();
    }
  }
  for (const auto& r : prefixes_) {
    std::string_view p = r.pattern;
    if (path.substr(0, p.size()) == p || path == p.substr(0, p.size() - 1)) {
      if (pattern) *pattern = r.pattern;
      return r.target.get();
    }
  }
  return nullptr;
}

// Not a coroutine: it only picks the handler (see http::answered()).
asio::awaitable<void> router::handle(http::exchange& ex) {
  std::string_view pattern;
  http::handler* h = match(ex.req.path, &pattern);
  if (h == nullptr) {
    if (fallback_) return fallback_->handle(ex);
    http::respond_text(ex, 404, "404 page not found");
    return http::answered();
  }
  ex.ctx.route = pattern;
  return h->handle(ex);
}

}  // namespace gateway::app
