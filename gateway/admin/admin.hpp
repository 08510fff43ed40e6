#pragma once
// The admin pages: /metrics, /logs and /logs/clear, each the answering
// layer of its route (app/pipeline.hpp puts auth and the rate limit before
// them). They read shared registries that outlive every pipeline.
#include <atomic>
#include <cstddef>

#include "gateway/http/layer.hpp"
#include "gateway/middleware/log_ring.hpp"
#include "gateway/middleware/metrics_registry.hpp"

namespace gateway::admin {

// JSON by default; Prometheus text format 0.0.4 for ?format=prometheus (or
// openmetrics), or when Accept prefers text/plain or
// application/openmetrics-text to application/json (weights honoured, a tie
// going to the type listed first; "*/*" alone gets JSON).
http::layer_ptr make_metrics_page(const middleware::metrics_registry& registry);

// The bytes of one /logs response (the JSON array), at most.
inline constexpr std::size_t logs_max_bytes = std::size_t{8} << 20;
// The /logs responses that may be alive at once in the process.
inline constexpr unsigned logs_max_readers = 2;

// Counts the /logs responses alive (rendered and not yet written) across
// every worker, so that concurrent readers cannot each hold a copy of the
// log: with the byte cap, /logs holds at most about
// max * 2 * logs_max_bytes (a std::string grows by doubling). Any thread.
class logs_readers {
 public:
  explicit logs_readers(unsigned max = logs_max_readers) noexcept : max_(max) {}
  logs_readers(const logs_readers&) = delete;
  logs_readers& operator=(const logs_readers&) = delete;
  // Takes a place; false when `max` are taken.
  bool try_enter() noexcept;
  void leave() noexcept { active_.fetch_sub(1, std::memory_order_acq_rel); }
  unsigned active() const noexcept { return active_.load(std::memory_order_acquire); }

 private:
  std::atomic<unsigned> active_{0};
  unsigned max_;
};

// GET (any method but the clear route's): the newest entries as a JSON
// array, oldest first; ?limit=N (default and maximum: the ring's capacity).
// The array holds at most `max_bytes`: when the entries asked for do not
// fit, the oldest are left out and the header X-Logs-Truncated gives their
// number. The response holds a place in `readers` (which must outlive it)
// from rendering until its request's memory is released; with none free:
// 503 and Retry-After: 1.
http::layer_ptr make_logs_page(const middleware::log_ring& ring, logs_readers& readers,
                               std::size_t max_bytes = logs_max_bytes);

// POST or DELETE: empties the ring, 200 {"status":"cleared"}; other methods 405.
http::layer_ptr make_logs_clear_page(middleware::log_ring& ring);

}  // namespace gateway::admin
