#include <chrono>
#include <string>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

class auth_handler final : public http::handler {
 public:
  auth_handler(http::handler_ptr next, const api_key_set& keys, const jwt_verifier* jwt, metrics_shard& shard)
      : next_(std::move(next)), keys_(keys), jwt_(jwt), shard_(shard) {}

  // Not a coroutine: nothing happens after the next layer (http::answered()).
  asio::awaitable<void> handle(http::exchange& ex) override {
    if (is_open_path(ex.req.path) || authorised(ex)) return next_->handle(ex);
    shard_.add(metric_counter::auth_rejected);
    http::respond_text(ex, 401, "Unauthorized");
    // RFC 6750 section 3 for bearer tokens; API keys have no standard scheme.
    ex.res.headers.add("WWW-Authenticate", bearer_challenge_);
    return http::answered();
  }

 private:
  bool authorised(http::exchange& ex) const {
    std::string_view key = ex.req.headers.value_of("x-api-key");
    if (!key.empty()) return keys_.contains(key);
    if (auto q = http::query_param(ex.req.query, "api_key"); q && !q->empty())
      return keys_.contains(http::form_decode(ex.mem(), *q));
    std::string_view authz = ex.req.headers.value_of("authorization");
    if (authz.size() > 7 && http::iequals(authz.substr(0, 7), "bearer ")) {
      if (jwt_ == nullptr) return false;
      std::string_view token = authz.substr(7);
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
      return jwt_->verify(token, std::chrono::system_clock::now()).ok();
    }
    return false;
  }

  http::handler_ptr next_;
  const api_key_set& keys_;
  const jwt_verifier* jwt_;
  metrics_shard& shard_;
  std::string bearer_challenge_ = "Bearer realm=\"gateway\"";
};

}  // namespace

http::middleware make_auth(const api_key_set& keys, const jwt_verifier* jwt, metrics_shard& shard) {
  return [&keys, jwt, &shard](http::handler_ptr next) -> http::handler_ptr {
    return std::make_unique<auth_handler>(std::move(next), keys, jwt, shard);
  };
}

}  // namespace gateway::middleware
