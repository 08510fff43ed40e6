#include <chrono>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

class logging_layer final : public http::layer {
 public:
  logging_layer(log_ring& ring, access_log& out) : ring_(ring), out_(out) {}

  http::step enter(http::exchange&, http::layer_state&) override { return http::step::next; }

  void leave(http::exchange& ex, http::layer_state&) override {
    log_entry_view e;
    e.timestamp = std::chrono::system_clock::now();
    e.method = ex.req.method;
    e.path = ex.req.target;
    e.status = ex.res.status;
    e.duration = ex.ctx.elapsed();
    e.client = ex.ctx.client_address;
    e.request_id = ex.ctx.request_id;
    e.headers = std::span<const http::header_field>(ex.req.headers.begin(), ex.req.headers.size());
    e.body = ex.ctx.received_body;
    ring_.push(e);
    out_.write(access_log_line{&e, ex.ctx.upstream});
  }

 private:
  log_ring& ring_;
  access_log& out_;
};

}  // namespace

http::layer_ptr make_logging(log_ring& ring, access_log& out) { return std::make_unique<logging_layer>(ring, out); }

}  // namespace gateway::middleware
