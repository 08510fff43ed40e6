#include <chrono>
#include <string>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

// Whether two field names are the same once case and the difference
// between '_' and '-' are ignored: CGI-style backends (wsgiref, Werkzeug,
// PHP) map X_User_Id and X-User-Id to the one variable HTTP_X_USER_ID, so a
// field the gateway owns must go under either spelling.
bool same_name_loosely(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto ca = static_cast<unsigned char>(a[i]);
    auto cb = static_cast<unsigned char>(b[i]);
    if (ca == '_') ca = '-';
    if (cb == '_') cb = '-';
    if (ca >= 'A' && ca <= 'Z') ca = static_cast<unsigned char>(ca + ('a' - 'A'));
    if (cb >= 'A' && cb <= 'Z') cb = static_cast<unsigned char>(cb + ('a' - 'A'));
    if (ca != cb) return false;
  }
  return true;
}

// Removes from the request every field whose name is one of the claim
// headers' under that loose comparison: claim headers come only from a
// verified token.
void strip_claim_headers(http::exchange& ex, const std::vector<jwt_claim_header>& names) noexcept {
  ex.req.headers.remove_if([&names](const http::header_field& f) {
    for (const auto& c : names)
      if (same_name_loosely(f.name, c.header)) return true;
    return false;
  });
}

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
    if (jwt_ != nullptr && !jwt_->options().claim_headers.empty())
      strip_claim_headers(ex, jwt_->options().claim_headers);
    if (authorised(ex)) return http::step::next;
    core::bump(shard_.stats().auth_rejected);
    http::respond_text(ex, 401, "Unauthorized");
    // RFC 6750 section 3 for bearer tokens; API keys have no standard scheme.
    ex.res.headers.add("WWW-Authenticate", bearer_challenge_);
    return http::step::answered;
  }

 private:
  bool authorised(http::exchange& ex) const {
    const std::string_view key = presented_api_key(ex);
    if (!key.empty()) {
      // The rate limit may have hashed these very bytes already (the
      // presented key, not a secret: comparing it leaks nothing).
      if (ex.ctx.api_key_source == key) return keys_.contains(key, ex.ctx.api_key_digest);
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

// The claim headers' removal alone, for routes without auth.
class claim_strip_layer final : public http::layer {
 public:
  explicit claim_strip_layer(const jwt_verifier& jwt) : jwt_(jwt) {}

  http::step enter(http::exchange& ex, http::layer_state&) override {
    strip_claim_headers(ex, jwt_.options().claim_headers);
    return http::step::next;
  }

 private:
  const jwt_verifier& jwt_;
};

}  // namespace

std::string_view presented_api_key(http::exchange& ex) {
  std::string_view key = ex.req.headers.value_of("x-api-key");
  if (key.empty()) {
    if (auto q = http::query_param(ex.req.query, "api_key"); q && !q->empty()) key = http::form_decode(ex.mem(), *q);
  }
  return key;
}

http::layer_ptr make_claim_header_strip(const jwt_verifier& jwt) {
  return std::make_unique<claim_strip_layer>(jwt);
}

http::layer_ptr make_auth(const api_key_set& keys, const jwt_verifier* jwt, metrics_shard& shard) {
  return std::make_unique<auth_layer>(keys, jwt, shard);
}

}  // namespace gateway::middleware
