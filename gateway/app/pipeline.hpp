#pragma once
// The request's way through the gateway, in the order it happens. This is
// the one place it is told: the code in pipeline.cpp builds what it says.
//
//   1. net/worker       accept on the worker's own listener (SO_REUSEPORT;
//                       which worker: net/accept_steering.hpp); of a burst
//                       found queued, a worker holding 2 or more
//                       connections beyond the lightest hands the
//                       descriptor to it before any I/O, and the
//                       connection stays on that thread; over
//                       --max-connections: a canned 503 with Retry-After
//      net/connection   with --proxy-protocol, first the PROXY v1/v2 header
//                       (net/proxy_protocol.hpp) within --header-timeout:
//                       none or a bad one closes the connection (counted);
//                       its source address is the client's from then on
//   2. net/connection   read the head: a strict RFC 9112 line scan, then
//                       llhttp must agree (400, 414, 431, 501, 505; 408 when
//                       it stalls past --header-timeout); the path's
//                       dot-segments resolved once (RFC 3986 5.2.4), so
//                       every later step sees the same path
//   3. net/connection   read the body once into the request arena (413 over
//                       --max-body, 503 when its arriving bytes cannot be
//                       covered by --body-budget, 408 when it stalls or
//                       averages under --body-min-rate); every later layer
//                       and the proxy use this copy
//   4. outer layers     [client address] -> request id -> metrics ->
//                       logging -> [response compression] (with
//                       --compress-responses; it acts on the way back
//                       out). The client
//                       address layer is there with --trusted-proxy: from a
//                       trusted peer, X-Forwarded-For names the client
//                       (http/forwarded_for.hpp) that every later step sees
//   5. router           exact path first, then the longest prefix; no match:
//                       404 here, before any route policy
//   6. route policy     [CORS] -> [rate limit] -> [auth] -> [body decoding]
//                       -> [validation] -> [header rules] -> [backend
//                       concurrency cap], as the route says (table below).
//                       Body decoding (proxied routes): a gzip or deflate
//                       body is decoded once, 413 past --max-body, only
//                       for a request the rate limit and auth let through. CORS answers a preflight
//                       itself (204, or 403), before the rate limit counts
//                       it or auth asks for credentials; auth removes the
//                       --jwt-claim-header fields and sets them from a
//                       verified token's claims (a proxied route without
//                       auth only removes them, in a layer of its own in
//                       auth's place); header rules edit the request after
//                       the policy has read it as sent (middleware/cors.hpp,
//                       middleware/jwt.hpp, middleware/header_rules.hpp)
//   7. endpoint         an admin page or the proxy (proxy/proxy_handler.hpp
//                       numbers its phases: member choice, pool, send,
//                       response head, retry on another member, stream; a
//                       route's "host": "upstream" is applied there)
//   8. back out         every layer entered leaves, innermost first: the
//                       route's response header rules (on the backend's
//                       answer or the 502/503/504 for it), RateLimit-*
//                       headers, the CORS fields (on every answer of the
//                       route, 401 and 429 included), response gzip, the
//                       /logs entry and access-log line, the metrics,
//                       X-Request-Id
//   9. net/connection   the head and the body in one send, or the head with
//                       the proxied body streamed after it; next request on
//                       the connection while keep-alive allows (pipelined
//                       requests are answered in order); a connection idle
//                       for a second gives up its session (buffers and
//                       coroutine frame) and gets a new one when bytes come
//  10. arena reset      every byte the request used is released together
//
// Routes and their policy:
//
//   /health, /metrics          rate limit
//   /logs, /logs/clear         rate limit, auth
//   /api/                      rate limit, auth, --validate rules, cap, proxy
//                              to --backend with /api removed
//   --route PREFIX=URL         its own: cors, rate_limit, auth, validate,
//                              header rules (config file); cap, proxy
//   any other path             404 from the router, before any policy (a
//                              route for "/" takes them instead)
//
// The rate limit counts every request of a route that has it, except those
// whose exact path is in --rate-limit-exempt. With --rate-limit-store the
// count is kept in Redis (middleware/rate_limit_store.hpp): the rate-limit
// layer waits for it, at most --rate-limit-store-timeout, on the worker's
// own loop; one store (a few Redis connections) per worker, shared by its
// routes.
//
// Steps 4 to 8 are http::layer objects (http/layer.hpp) run by one
// http::pipeline per worker, built here once at start-up and again for a
// reload; a request already running keeps the pipeline it started on.
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/admin/admin.hpp"
#include "gateway/app/settings.hpp"
#include "gateway/middleware/access_log.hpp"
#include "gateway/middleware/log_ring.hpp"
#include "gateway/middleware/metrics_registry.hpp"
#include "gateway/middleware/rate_limit_store.hpp"
#include "gateway/net/worker.hpp"
#include "gateway/core/backend_list.hpp"
#include "gateway/proxy/name_resolver.hpp"
#include "gateway/proxy/upstream_group.hpp"
#include "gateway/proxy/upstream_pool.hpp"

namespace gateway::app {

// The upstream group members' states (health, figures), one per (route
// prefix, member URL), shared by every worker's pipeline and kept across
// reloads so that a member keeps its health and counts. Any thread.
class member_registry {
 public:
  // A configuration has at most max_backend_members (settings.cpp refuses
  // more at start and reload); while a reload builds its pipelines the
  // running ones still hold theirs, so the registry has room for both: a
  // reload that replaces every member of the largest configuration fits.
  static constexpr std::size_t max_entries = 2 * max_backend_members;
  // The states of `members` under `route`, in their order, created on first
  // use (and those no pipeline holds any more forgotten). Throws
  // std::length_error past max_entries members in all (the running
  // configuration's and the incoming one's together).
  std::vector<std::shared_ptr<proxy::member_state>> states(std::string_view route,
                                                           const std::vector<core::backend_member>& members);
  // Forgets the members no pipeline holds any more (after a reload).
  void prune();
  // The members some pipeline holds (a member that left with a reload or a
  // name's address change is no longer listed).
  std::vector<std::shared_ptr<proxy::member_state>> all() const;

  // /metrics: "upstream_members":[{"route","member","weight","requests",
  // "errors","latency_ms_avg","healthy","ejected","down","ejections",
  // "checks_failed"},...]; Prometheus families gateway_upstream_member_*
  // labelled {route, member}.
  void render_json(std::string& out) const;
  void render_prometheus(std::string& out) const;

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<proxy::member_state>> members_;
};

// What the pipelines of every worker share, across reloads. Outlives them.
struct shared_state {
  shared_state(const core::config& cfg, std::FILE* access_log_out);
  middleware::metrics_registry metrics;
  middleware::log_ring logs;
  admin::logs_readers log_readers;  // the /logs responses alive
  middleware::access_log access;
  std::shared_ptr<proxy::upstream_stats> upstream = std::make_shared<proxy::upstream_stats>();
  member_registry members;
  // The backends' host names and their addresses (proxy/name_resolver.hpp):
  // resolved at start-up and reload, followed by worker 0's refresher.
  std::shared_ptr<proxy::name_table> names = std::make_shared<proxy::name_table>();
  // The shared rate-limit store's state and counters (--rate-limit-store).
  middleware::rate_limit_store_health store_health;
  // The limiter of the running settings, for the metrics (which read it
  // from another thread): set_limiter() on a reload, current_limiter() to read.
  void set_limiter(std::shared_ptr<middleware::rate_limiter> l);
  std::shared_ptr<middleware::rate_limiter> current_limiter() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<middleware::rate_limiter> limiter_;
};

// Builds each worker's pipeline from `s` (which every pipeline keeps alive)
// and `state`.
net::chain_factory make_pipeline_factory(std::shared_ptr<const settings> s, shared_state& state);

}  // namespace gateway::app
