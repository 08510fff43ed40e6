#include <chrono>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

class metrics_hook final : public http::hook {
 public:
  explicit metrics_hook(metrics_shard& shard) : shard_(shard) {}

  bool before(http::exchange&, void*&) override { return true; }

  void after(http::exchange& ex, void*) override {
    // Latency from the end of the request's reading to the response being
    // ready (a streamed body's transfer is the client's and the backend's time).
    shard_.record(ex.req.path, ex.res.status, std::chrono::steady_clock::now() - ex.ctx.start);
  }

 private:
  metrics_shard& shard_;
};

}  // namespace

http::middleware make_metrics(metrics_shard& shard) {
  return http::hook_middleware([&shard] { return std::make_unique<metrics_hook>(shard); });
}

}  // namespace gateway::middleware
