#include <chrono>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

class metrics_handler final : public http::handler {
 public:
  metrics_handler(http::handler_ptr next, metrics_shard& shard) : next_(std::move(next)), shard_(shard) {}

  asio::awaitable<void> handle(http::exchange& ex) override {
    co_await next_->handle(ex);
    // Latency from the end of the request's reading to the response being
    // ready (a streamed body's transfer is the client's and the backend's time).
    shard_.record(ex.req.path, ex.res.status, std::chrono::steady_clock::now() - ex.ctx.start);
  }

 private:
  http::handler_ptr next_;
  metrics_shard& shard_;
};

}  // namespace

http::middleware make_metrics(metrics_shard& shard) {
  return [&shard](http::handler_ptr next) -> http::handler_ptr {
    return std::make_unique<metrics_handler>(std::move(next), shard);
  };
}

}  // namespace gateway::middleware
