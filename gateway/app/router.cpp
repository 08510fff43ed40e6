#include "gateway/app/router.hpp"

#include <algorithm>
#include <stdexcept>

namespace gateway::app {

namespace {

class fixed_answer final : public http::layer {
 public:
  fixed_answer(int status, std::string message) : status_(status), message_(std::move(message)) {}
  http::step enter(http::exchange& ex, http::layer_state&) override {
    http::respond_text(ex, status_, message_);
    return http::step::answered;
  }

 private:
  int status_;
  std::string message_;
};

}  // namespace

http::layer_ptr make_fixed_answer(int status, std::string message) {
  return std::make_unique<fixed_answer>(status, std::move(message));
}

router::router() : fallback_(single(make_fixed_answer(404, "404 page not found"))) {}

void router::add_exact(std::string path, http::layer_list layers) {
  exact_.push_back({std::move(path), std::move(layers)});
}

void router::add_prefix(std::string prefix, http::layer_list layers) {
  if (prefix.empty() || prefix.back() != '/') throw std::invalid_argument("route prefix must end in '/': " + prefix);
  prefixes_.push_back({std::move(prefix), std::move(layers)});
  std::stable_sort(prefixes_.begin(), prefixes_.end(),
                   [](const route& a, const route& b) { return a.pattern.size() > b.pattern.size(); });
}

const http::layer_list* router::match(std::string_view path, std::string_view* pattern) const noexcept {
  for (const auto& r : exact_) {
    if (r.pattern == path) {
      if (pattern) *pattern = r.pattern;
      return &r.layers;
    }
  }
  for (const auto& r : prefixes_) {
    std::string_view p = r.pattern;
    if (path.substr(0, p.size()) == p || path == p.substr(0, p.size() - 1)) {
      if (pattern) *pattern = r.pattern;
      return &r.layers;
    }
  }
  return nullptr;
}

std::span<const http::layer_ptr> router::select(http::exchange& ex) {
  std::string_view pattern;
  const http::layer_list* r = match(ex.req.path, &pattern);
  if (r == nullptr) return fallback_;
  ex.ctx.route = pattern;
  return *r;
}

std::size_t router::max_route_depth() const noexcept {
  std::size_t d = fallback_.size();
  for (const auto& r : exact_) d = std::max(d, r.layers.size());
  for (const auto& r : prefixes_) d = std::max(d, r.layers.size());
  return d;
}

}  // namespace gateway::app
