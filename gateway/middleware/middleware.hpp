#pragma once
// The gateway's middleware, one file each, as http::layer factories (the
// contract: http/layer.hpp; the order they run in: app/pipeline.hpp).
// Shared state (registries, tables, keys) outlives every layer built from it.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/config.hpp"
#include "gateway/core/ip_address.hpp"
#include "gateway/http/layer.hpp"
#include "gateway/http/query.hpp"
#include "gateway/middleware/access_log.hpp"
#include "gateway/middleware/api_keys.hpp"
#include "gateway/middleware/jwt.hpp"
#include "gateway/middleware/log_ring.hpp"
#include "gateway/middleware/metrics_registry.hpp"
#include "gateway/middleware/rate_limit_store.hpp"
#include "gateway/middleware/rate_limiter.hpp"

namespace gateway::middleware {

// The client behind a trusted proxy (--trusted-proxy): when the peer (the
// socket's, or the PROXY protocol's) is in `trusted`, ex.ctx.client_ip and
// client_address become the client X-Forwarded-For names (the walk is in
// http/forwarded_for.hpp), the address alone since the header has no port.
// Every later step (rate limit, /logs, access log, the X-Forwarded-For the
// proxy appends) sees that address. Not in the pipeline without ranges.
http::layer_ptr make_client_address(core::cidr_set trusted);

// X-Request-Id: the client's when sane (<= 128 plain characters), else a
// generated one; set on the request (so the backend gets it), kept in the
// context (access log, /logs) and returned on the response. The client's id
// is its first X-Request-Id field's; the backend gets that one field only.
http::layer_ptr make_request_id(unsigned worker);

// Counts every request (path, status, latency) in the worker's shard.
http::layer_ptr make_metrics(metrics_shard& shard);

// Keeps the newest entries for /logs (redacted) and writes the access log.
http::layer_ptr make_logging(log_ring& ring, access_log& out);

// 429 with Retry-After over the limit; RateLimit-* headers on every
// limited response. Keyed by client IP; with `keys` (--rate-limit-key
// api-key: the configured keys, which must outlive the layer), by API key
// when the request presents one of `keys` (as presented_api_key reads it),
// and by client IP when it presents none or any other key. Every path is limited (as in the seed,
// /health and /metrics included) except the exact paths in `exempt`
// (--rate-limit-exempt), which pass uncounted and without RateLimit-*.
//
// With `store` (--rate-limit-store), the shared store decides: enter() sends
// the check and returns wait; await() takes the answer within the store's
// timeout. A request the store allowed is also counted in `limiter`, so
// this instance's table holds its own share of the client's traffic. When
// the store is slow, down or busy, `fail_open` decides in `limiter` alone,
// else the answer is 503 (Retry-After: 1).
http::layer_ptr make_rate_limit(rate_limiter& limiter, const api_key_set* keys, metrics_shard& shard,
                                std::vector<std::string> exempt = {}, std::shared_ptr<rate_limit_store> store = nullptr,
                                bool fail_open = true);

// The API key a request presents: the X-API-Key field's value, else the
// api_key query parameter's, form-decoded (%XX and '+'; in the request's
// arena when it has escapes); empty when it presents none. The one reading
// of the key that the API-key check and the rate limit by API key share, so
// that both see the same bytes however the client spells them.
std::string_view presented_api_key(http::exchange& ex);

// API key (X-API-Key or api_key query) or Authorization: Bearer <JWT>.
// Failure: 401 with WWW-Authenticate. `jwt` may be null: bearer tokens are
// then refused. The request fields named by the verifier's claim_headers
// are removed on entry and, for a verified token, set from its claims (the
// backend sees only what the token says). A field counts as named when its
// name equals a claim header's ignoring case and '_' versus '-' (X_User_Id
// for X-User-Id): CGI-style backends read both as HTTP_X_USER_ID.
http::layer_ptr make_auth(const api_key_set& keys, const jwt_verifier* jwt, metrics_shard& shard);

// The claim-header removal of make_auth alone (the same names, the same
// loose comparison), for proxied routes without auth. `jwt` must outlive
// the layer.
http::layer_ptr make_claim_header_strip(const jwt_verifier& jwt);

// A route's JSON body rules: for POST and PUT to a path under a rule set's
// route (a prefix), the body must be a JSON object satisfying that set's
// field rules. The body is parsed once, whatever the number of sets. 400
// "Invalid JSON", "Missing field: x", "Field too short: x", "Field too
// long: x". The rules must outlive the layer.
http::layer_ptr make_validation(const std::vector<const core::validation_rules*>& rules);

}  // namespace gateway::middleware
