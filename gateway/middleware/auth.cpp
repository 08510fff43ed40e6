#include <chrono>
#include <string>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

class auth_layer final : public http::layer {
 public:
  auth_layer(const api_key_set& keys, const jwt_verifier* jwt, metrics_shard& shard)
      : keys_(keys), jwt_(jwt), shard_(shard) {}

  http::step enter(http::exchange& ex, http::layer_state&) override {
    if (authorised(ex)) return http::step::next;
    core::bump(shard_.stats().auth_rejected);
    http::respond_text(ex, 401, "Unauthorized");
    // RFC 6750 section 3 for bearer tokens; API keys have no standard scheme.
    ex.res.headers.add("WWW-Authenticate", bearer_challenge_);
    return http::step::answered;
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

  const api_key_set& keys_;
  const jwt_verifier* jwt_;
  metrics_shard& shard_;
  std::string bearer_challenge_ = "Bearer realm=\"gateway\"";
};

}  // namespace

http::layer_ptr make_auth(const api_key_set& keys, const jwt_verifier* jwt, metrics_shard& shard) {
  return std::make_unique<auth_layer>(keys, jwt, shard);
}

}  // namespace gateway::middleware
