#pragma once
// CORS per route (the Fetch standard's "CORS protocol"), from a route's
// "cors" settings (core/config_file.hpp).
//
// The layer is the first of its route, so it runs before the route's rate
// limit and auth:
//
//   preflight   OPTIONS with Origin and Access-Control-Request-Method:
//               answered here, never counted by the rate limit nor asked
//               for credentials (a browser sends none with it). 204 with
//               Access-Control-Allow-Origin, -Allow-Methods, -Allow-Headers
//               (the configured list, or the requested names when any is
//               allowed), -Allow-Credentials and -Max-Age as configured;
//               403 when the origin, the method or one of the requested
//               headers is not allowed
//   any other   goes on; on the way back (whoever answered: the backend,
//               or the route's own 401, 429, 400, 502...) a request from an
//               allowed origin gets Access-Control-Allow-Origin (its origin,
//               or "*"), -Allow-Credentials and -Expose-Headers, so that a
//               browser lets the page read an error too
//
// Every response of a route with an origin list (not "*") carries
// "Vary: Origin" (a cache must not hand one origin's answer to another).
// The route owns its CORS answer: Access-Control-* fields from the backend
// are removed.
//
// Origins match exactly (scheme://host[:port], as browsers send them);
// methods match exactly; header names case-insensitively. "*" origins with
// credentials are refused at start-up (browsers reject that answer), as are
// "*" exposed headers with credentials (browsers read it as a name then).
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gateway/core/config.hpp"
#include "gateway/http/layer.hpp"
#include "gateway/middleware/metrics_registry.hpp"

namespace gateway::middleware {

struct cors_policy {
  bool any_origin = false;
  std::vector<std::string> origins;
  std::vector<std::string> methods;
  bool any_header = false;
  std::vector<std::string> headers;
  bool credentials = false;
  // The response values, joined once.
  std::string allow_methods;  // "GET, POST"
  std::string allow_headers;  // "Content-Type, X-Token" (empty: none, or any)
  std::string expose_headers;
  std::string max_age;  // seconds, empty when not configured
};

// Checks and compiles a route's CORS settings. Throws std::invalid_argument
// naming the key ("cors.origins 'https://a.example/': ...").
cors_policy compile_cors(const core::cors_config& c);

// The layer (the policy must outlive it); counts preflights in `shard`.
http::layer_ptr make_cors(const cors_policy& policy, metrics_shard& shard);

}  // namespace gateway::middleware
