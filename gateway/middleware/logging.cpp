#include <chrono>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

class logging_handler final : public http::handler {
 public:
  logging_handler(http::handler_ptr next, log_ring& ring, access_log& out)
      : next_(std::move(next)), ring_(ring), out_(out) {}

  asio::awaitable<void> handle(http::exchange& ex) override {
    // The body as the client sent it (decompression later replaces the view).
    std::string_view body = ex.req.body;
    co_await next_->handle(ex);
    log_entry_view e;
    e.timestamp = std::chrono::system_clock::now();
    e.method = ex.req.method;
    e.path = ex.req.target;
    e.status = ex.res.status;
    e.duration = std::chrono::steady_clock::now() - ex.ctx.start;
    e.client = ex.ctx.client_ip;
    e.request_id = ex.ctx.request_id;
    e.headers = std::span<const http::header_field>(ex.req.headers.begin(), ex.req.headers.size());
    e.body = body;
    ring_.push(e);
    out_.write(access_log_line{&e, ex.ctx.upstream});
  }

 private:
  http::handler_ptr next_;
  log_ring& ring_;
  access_log& out_;
};

}  // namespace

http::middleware make_logging(log_ring& ring, access_log& out) {
  return [&ring, &out](http::handler_ptr next) -> http::handler_ptr {
    return std::make_unique<logging_handler>(std::move(next), ring, out);
  };
}

}  // namespace gateway::middleware
