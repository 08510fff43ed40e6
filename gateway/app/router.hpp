#pragma once
// The router: exact paths first, then the longest registered prefix ending
// in '/' (deterministic, unlike the seed's map-order choice). Each route is
// the list of layers a request meets after the pipeline's outer ones: its
// policy (rate limit, auth, validation, concurrency cap) and, last, the
// layer that answers. Built once per worker; read-only afterwards.
#include <string>
#include <string_view>
#include <vector>

#include "gateway/http/layer.hpp"

namespace gateway::app {

class router final : public http::dispatcher {
 public:
  router();

  void add_exact(std::string path, http::layer_list layers);
  // `prefix` must end in '/'; it also matches the path without the final
  // slash ("/api/" matches "/api").
  void add_prefix(std::string prefix, http::layer_list layers);
  // A route of one layer (which answers).
  void add_exact(std::string path, http::layer_ptr endpoint) { add_exact(std::move(path), single(std::move(endpoint))); }
  void add_prefix(std::string prefix, http::layer_ptr endpoint) {
    add_prefix(std::move(prefix), single(std::move(endpoint)));
  }
  static http::layer_list single(http::layer_ptr l) {
    http::layer_list list;
    list.push_back(std::move(l));
    return list;
  }
  // Serves paths no route matches (default: one layer answering 404).
  void set_fallback(http::layer_list layers) { fallback_ = std::move(layers); }

  // The route for `path` and its pattern, or null when none matches.
  const http::layer_list* match(std::string_view path, std::string_view* pattern = nullptr) const noexcept;

  // The route for ex.req.path (its pattern goes to ex.ctx.route), or the
  // fallback.
  std::span<const http::layer_ptr> select(http::exchange& ex) override;

  std::size_t max_route_depth() const noexcept override;

 private:
  struct route {
    std::string pattern;
    http::layer_list layers;
  };
  std::vector<route> exact_;
  std::vector<route> prefixes_;  // longest first
  http::layer_list fallback_;
};

// A layer that answers every request it gets with `status` and a text body.
http::layer_ptr make_fixed_answer(int status, std::string message);

}  // namespace gateway::app
