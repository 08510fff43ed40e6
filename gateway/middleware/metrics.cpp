#include <chrono>

#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

class metrics_layer final : public http::layer {
 public:
  explicit metrics_layer(metrics_shard& shard) : shard_(shard) {}

  http::step enter(http::exchange&, http::layer_state&) override { return http::step::next; }

  void leave(http::exchange& ex, http::layer_state&) override {
    // Latency from the end of the request's reading to the response being
    // ready (a streamed body's transfer is the client's and the backend's time).
    shard_.record(ex.req.path, ex.res.status, ex.ctx.elapsed());
  }

 private:
  metrics_shard& shard_;
};

}  // namespace

http::layer_ptr make_metrics(metrics_shard& shard) { return std::make_unique<metrics_layer>(shard); }

}  // namespace gateway::middleware
