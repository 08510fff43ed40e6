#pragma once
// The admin pages: /metrics, /logs and /logs/clear, each the answering
// layer of its route (app/pipeline.hpp puts auth and the rate limit before
// them). They read shared registries that outlive every pipeline.
#include "gateway/http/layer.hpp"
#include "gateway/middleware/log_ring.hpp"
#include "gateway/middleware/metrics_registry.hpp"

namespace gateway::admin {

// JSON by default; Prometheus text format 0.0.4 for ?format=prometheus (or
// openmetrics), or when Accept prefers text/plain or
// application/openmetrics-text to application/json (weights honoured, a tie
// going to the type listed first; "*/*" alone gets JSON).
http::layer_ptr make_metrics_page(const middleware::metrics_registry& registry);

// GET (any method but the clear route's): the newest entries as a JSON
// array, oldest first; ?limit=N (default and maximum: the ring's capacity).
http::layer_ptr make_logs_page(const middleware::log_ring& ring);

// POST or DELETE: empties the ring, 200 {"status":"cleared"}; other methods 405.
http::layer_ptr make_logs_clear_page(middleware::log_ring& ring);

}  // namespace gateway::admin
