#pragma once
// What the configuration turns into before a pipeline is built from it: the
// API keys, the JWT verifier and the rate limiter, checked and built once.
// Immutable once built; every pipeline holds the settings it was built with,
// so a reload never changes what a running request uses.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/config.hpp"
#include "gateway/middleware/api_keys.hpp"
#include "gateway/middleware/cors.hpp"
#include "gateway/middleware/header_rules.hpp"
#include "gateway/middleware/jwt.hpp"
#include "gateway/middleware/rate_limit_store.hpp"
#include "gateway/middleware/rate_limiter.hpp"
#include "gateway/proxy/name_resolver.hpp"
#include "gateway/proxy/upstream_tls.hpp"

namespace gateway::app {

// A setting that is wrong in itself, not in its surroundings (a header rule
// a route may not have, CORS that browsers would refuse): run() exits 2 for
// it, as for a bad flag or config file.
struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Backend group members in all (--backend's and every route's): each has a
// state and /metrics series kept across reloads (member_registry).
inline constexpr std::size_t max_backend_members = 1024;

// What one configured route needs besides its config: its header rules and
// CORS policy, checked and compiled once.
struct route_settings {
  middleware::route_header_rules headers;
  std::optional<middleware::cors_policy> cors;
};

struct settings {
  core::config cfg;  // resolved: threads and backend filled in
  middleware::api_key_set keys;
  std::unique_ptr<middleware::jwt_verifier> jwt;      // null without --jwt-secret and --jwt-jwks
  std::shared_ptr<middleware::rate_limiter> limiter;  // null when --rate-limit off
  std::vector<route_settings> routes;                 // one per cfg.routes, in its order
  // --rate-limit-store with its host resolved to a numeric address (at
  // start-up or reload, never on a worker): set when the limiter is on and
  // a store is configured.
  std::optional<middleware::rate_limit_store_options> store;
  // The client TLS context for https:// backends (--upstream-ca,
  // --upstream-insecure), one for every worker and route: set only when
  // some backend is https.
  std::shared_ptr<proxy::upstream_tls> upstream_tls;
};

// `cfg` with what "default" means filled in (threads: one per core).
core::config resolved(core::config cfg);

// Builds the settings for `cfg`; throws config_error naming the flag for a
// bad key file or key, a bad --backend URL, a bad --jwt-jwks file or
// --jwt-claim-header, and naming the route (and the key) for a bad route
// backend URL, header rules or CORS settings. `reuse_limiter` is taken instead of a
// new table when the rate-limit options are unchanged, so clients keep their
// counts across a reload.
std::shared_ptr<const settings> make_settings(core::config cfg,
                                              std::shared_ptr<middleware::rate_limiter> reuse_limiter = nullptr);

// True when `a` and `b` build the same rate limiter.
bool same_limiter(const core::config& a, const core::config& b) noexcept;

// Settings that only a restart can change (listener and --proxy-protocol, threads, client-side
// limits and timeouts, log sinks): empty when `a` and `b` agree on them,
// else their config keys, comma-separated.
std::string restart_only_changes(const core::config& a, const core::config& b);

// The checks across flags that a start makes before building anything
// (TLS with --redirect-http and --proxy-protocol, --tls self-signed alone, a
// numeric --listen address); throws config_error naming the flag. Both
// --check-config and a start call it, so --check-config cannot pass what a
// start refuses. `check_only`: also checks that the --tls-self-signed-pem
// file could be written (its directory exists and is writable) without
// writing it; a start writes it and says so itself.
void check_startup(const core::config& cfg, bool check_only);

// Checks `cfg` as the gateway would start it (flags, key files, backends,
// the listen address) without binding anything: --check-config. On success
// `message` summarises the routes.
bool check_config(const core::config& cfg, std::string& message);

// The host names (not numeric addresses) of every backend member of `cfg`:
// --backend and each route's, each name once.
std::vector<std::string> backend_host_names(const core::config& cfg);
proxy::dns_options dns_options_of(const core::config& cfg);
// Resolves every backend host name of `cfg` that `table` does not know yet
// (blocking: start-up, reload, --check-config; never on a worker). Throws
// config_error naming the backend (--backend or the route) and the name
// when one cannot be resolved.
void resolve_backend_names(const core::config& cfg, proxy::name_table& table);

// The proxied routes, one line each, for start-up and reload messages.
std::string describe_routes(const core::config& cfg);

// The seed's proxied route, always served (to --backend, or the embedded
// echo backend).
inline constexpr std::string_view api_route_prefix = "/api/";

// A --validate rule's path belongs to a proxied route (api_route_prefix or a
// route prefix, which add_route stores ending in '/') when the prefix starts
// it or it is the prefix without its '/'. The rule goes to the longest such
// prefix.
inline bool route_prefix_covers(std::string_view prefix, std::string_view path) noexcept {
  return path.substr(0, prefix.size()) == prefix || (!prefix.empty() && path == prefix.substr(0, prefix.size() - 1));
}

}  // namespace gateway::app
