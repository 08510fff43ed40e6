#pragma once
// The gateway's middleware, one file each. Every factory returns a
// http::middleware (next handler in, handler out), composed once per worker
// at start-up in the contract's order (see app/app.cpp):
//   body limit (in net/connection) -> request id -> metrics -> logging -> compression
//   -> router (unknown path: 404) -> per route: rate limit -> auth -> [validation] -> route
// Shared state (registries, tables, keys) is owned by app::gateway and
// outlives every chain.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/config.hpp"
#include "gateway/http/handler.hpp"
#include "gateway/middleware/access_log.hpp"
#include "gateway/middleware/api_keys.hpp"
#include "gateway/middleware/jwt.hpp"
#include "gateway/middleware/log_ring.hpp"
#include "gateway/middleware/metrics_registry.hpp"
#include "gateway/middleware/rate_limiter.hpp"

namespace gateway::middleware {

// X-Request-Id: the client's when sane (<= 128 plain characters), else a
// generated one; set on the request (so the backend gets it), kept in the
// context (access log, /logs) and returned on the response.
http::middleware make_request_id(unsigned worker);

// Counts every request (path, status, latency) in the worker's shard.
http::middleware make_metrics(metrics_shard& shard);

// Keeps the newest entries for /logs (redacted) and writes the access log.
http::middleware make_logging(log_ring& ring, access_log& out);

// 429 with Retry-After over the limit; RateLimit-* headers on every
// limited response. Keyed by client IP, or by API key when `by_api_key`
// and the request presents one. Every path is limited (as in the seed,
// /health and /metrics included) except the exact paths in `exempt`
// (--rate-limit-exempt), which pass uncounted and without RateLimit-*.
http::middleware make_rate_limit(rate_limiter& limiter, bool by_api_key, metrics_shard& shard,
                                 std::vector<std::string> exempt = {});

// API key (X-API-Key or api_key query) or Authorization: Bearer <JWT>.
// /health and /metrics skip it. Failure: 401 with WWW-Authenticate.
// `jwt` may be null: bearer tokens are then refused.
http::middleware make_auth(const api_key_set& keys, const jwt_verifier* jwt, metrics_shard& shard);

// Route-level: for paths under rules.route (a prefix), POST and PUT bodies
// must be a JSON object satisfying the
// field rules. 400 "Invalid JSON", "Missing field: x", "Field too short: x",
// "Field too long: x".
http::handler_ptr make_validation(const core::validation_rules& rules, http::handler_ptr next);

// The value of query parameter `name` (first match, not percent-decoded), if present.
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) noexcept;

// True for paths that skip auth.
bool is_open_path(std::string_view path) noexcept;

}  // namespace gateway::middleware
