#pragma once
// The admin routes: /metrics (no auth), /logs and /logs/clear (auth, via
// the chain). Handlers read shared registries that outlive every chain.
#include "gateway/http/handler.hpp"
#include "gateway/middleware/log_ring.hpp"
#include "gateway/middleware/metrics_registry.hpp"

namespace gateway::admin {

// JSON by default; Prometheus text format 0.0.4 for ?format=prometheus or
// an Accept header naming text/plain or application/openmetrics-text.
http::handler_ptr make_metrics_handler(const middleware::metrics_registry& registry);

// GET (any method but the clear route's): the newest entries as a JSON
// array, oldest first; ?limit=N (default and maximum: the ring's capacity).
http::handler_ptr make_logs_handler(const middleware::log_ring& ring);

// POST or DELETE: empties the ring, 200 {"status":"cleared"}; other methods 405.
http::handler_ptr make_logs_clear_handler(middleware::log_ring& ring);

}  // namespace gateway::admin
