#include <chrono>
#include <string>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

// Adds each forwarded claim of a verified token to the request, its value
// copied into the request arena; the names are the verifier's options,
// which outlive the pipeline.
class claim_writer final : public jwt_claim_sink {
 public:
  claim_writer(http::exchange& ex, const std::vector<jwt_claim_header>& names) : ex_(ex), names_(names) {}
  void claim(std::size_t index, std::string_view value) override {
    ex_.req.headers.add(names_[index].header, ex_.mem().copy(value));
  }

 private:
  http::exchange& ex_;
  const std::vector<jwt_claim_header>& names_;
};

class auth_layer final : public http::layer {
 public:
  auth_layer(const api_key_set& keys, const jwt_verifier* jwt, metrics_shard& shard)
      : keys_(keys), jwt_(jwt), shard_(shard) {}

  http::step enter(http::exchange& ex, http::layer_state&) override {
    // Claim headers come only from a verified token: whatever the client
    // sent under those names goes first, however it authenticates.
    if (jwt_ != nullptr) {
      for (const auto& c : jwt_->options().claim_headers) ex.req.headers.remove(c.header);
    }
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
    if (key.empty()) {
      if (auto q = http::query_param(ex.req.query, "api_key"); q && !q->empty()) key = http::form_decode(ex.mem(), *q);
    }
    if (!key.empty()) {
      // The rate limit may have hashed these very bytes already.
      if (ex.ctx.api_key_source.data() == key.data() && ex.ctx.api_key_source.size() == key.size())
        return keys_.contains(key, ex.ctx.api_key_digest);
      return keys_.contains(key);
    }
    std::string_view authz = ex.req.headers.value_of("authorization");
    if (authz.size() > 7 && http::iequals(authz.substr(0, 7), "bearer ")) {
      if (jwt_ == nullptr) return false;
      std::string_view token = authz.substr(7);
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
      claim_writer claims(ex, jwt_->options().claim_headers);
      return jwt_->verify(token, std::chrono::system_clock::now(), &claims).ok();
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
