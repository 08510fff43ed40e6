#include <chrono>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

class logging_hook final : public http::hook {
 public:
  logging_hook(log_ring& ring, access_log& out) : ring_(ring), out_(out) {}

  bool before(http::exchange& ex, void*& state) override {
    // The body as the client sent it (decompression later replaces the view).
    if (!ex.req.body.empty()) state = ex.mem().make<std::string_view>(ex.req.body);
    return true;
  }

  void after(http::exchange& ex, void* state) override {
    log_entry_view e;
    e.timestamp = std::chrono::system_clock::now();
    e.method = ex.req.method;
    e.path = ex.req.target;
    e.status = ex.res.status;
    e.duration = std::chrono::steady_clock::now() - ex.ctx.start;
    e.client = ex.ctx.client_address;
    e.request_id = ex.ctx.request_id;
    e.headers = std::span<const http::header_field>(ex.req.headers.begin(), ex.req.headers.size());
    if (state != nullptr) e.body = *static_cast<std::string_view*>(state);
    ring_.push(e);
    out_.write(access_log_line{&e, ex.ctx.upstream});
  }

 private:
  log_ring& ring_;
  access_log& out_;
};

}  // namespace

http::middleware make_logging(log_ring& ring, access_log& out) {
  return http::hook_middleware([&ring, &out] { return std::make_unique<logging_hook>(ring, out); });
}

}  // namespace gateway::middleware
