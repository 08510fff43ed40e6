#include "gateway/http/forwarded_for.hpp"
#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

class client_address_layer final : public http::layer {
 public:
  explicit client_address_layer(core::cidr_set trusted) : trusted_(std::move(trusted)) {}

  http::step enter(http::exchange& ex, http::layer_state&) override {
    const auto peer = core::parse_ip(ex.ctx.client_ip);
    if (!peer) return http::step::next;
    const auto client = http::client_from_forwarded_for(ex.req.headers, *peer, trusted_);
    if (!client.from_header) return http::step::next;
    // The header gives no port: the client's address alone, in its
    // canonical text, so that one client is one rate-limit key however a
    // proxy spelled it.
    auto* text = static_cast<char*>(ex.mem().allocate(core::max_ip_text, 1));
    const std::size_t n = core::format_ip(client.address, text);
    ex.ctx.client_ip = std::string_view(text, n);
    ex.ctx.client_address = ex.ctx.client_ip;
    return http::step::next;
  }

 private:
  core::cidr_set trusted_;
};

}  // namespace

http::layer_ptr make_client_address(core::cidr_set trusted) {
  return std::make_unique<client_address_layer>(std::move(trusted));
}

}  // namespace gateway::middleware
