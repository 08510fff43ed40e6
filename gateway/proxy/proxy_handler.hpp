#pragma once
// The reverse proxy route: "/api/..." forwarded to the backend.
//
// Per request, in order (the proxy's phases):
//   1. build the backend's request head (request_writer.hpp: prefix
//      stripped, hop-by-hop fields removed, X-Forwarded-* added) in the arena
//   2. choose the group's member (upstream_group.hpp: round robin or least
//      request over the members not ejected or marked down; a route with a
//      named member first takes the name's new addresses when the name
//      table moved, name_resolver.hpp, as the worker's sweep also makes it
//      do between requests), take a pooled
//      connection of that member (upstream_pool.hpp) or connect
//      (connect timeout -> 504, refused -> 502)
//   3. one gathered write of head + the once-read body, then read the
//      response head, both within the response timeout (-> 504), which
//      runs from the first send and also bounds step 4: a retry and a
//      failover wait (and connect) within what is left of it. On a pooled
//      connection the head's first read is the one the pool started when
//      the connection went idle (upstream_pool.hpp), awaited, not started
//      again. A client that leaves meanwhile (from the connect to the head,
//      found by the worker's sweep: http/upstream_guard.hpp) ends the
//      exchange: the backend connection is closed, the request is logged
//      and counted as 499 and its client gets nothing
//   4. a pooled connection that turns out closed before any response byte
//      is retried once on a fresh connection, if the method is idempotent
//      (RFC 9110 section 9.2.2) or nothing of the request was sent; a POST
//      that may have reached the backend is never sent twice. Then, in a
//      group, a member that refused, timed out connecting or reset before
//      any response byte hands the request to another member once, under
//      the same rule and within the retry budget; the outcome (failure,
//      5xx, success) goes to the member's passive health
//   5. the response head goes to ex.res (status, reason, fields minus
//      hop-by-hop); the body stays on the socket and is pulled by the
//      client connection through ex.res.stream, a body_source in the
//      request arena with one fixed buffer (`buffer_size`): the client's
//      pace is the backend's pace, nothing is buffered beyond that
//   6. the connection returns to the pool when the response was read to its
//      end and the backend allows reuse; a response left unfinished (client
//      gone, backend died mid-body, shutdown) closes it instead
//
// While a request holds an upstream socket, its http::upstream_guard (the
// response, then a tunnel) is registered in ex.ctx.guard: the server's hard
// shutdown ends that work at once, and the worker's sweep enforces the
// response timeout through it.
//
// Thread: the handler and its pool belong to one worker; handle() and the
// body source run on that worker's thread only.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "gateway/core/config.hpp"
#include "gateway/http/layer.hpp"
#include "gateway/net/worker.hpp"
#include "gateway/proxy/health_check.hpp"
#include "gateway/proxy/name_resolver.hpp"
#include "gateway/proxy/upstream_group.hpp"
#include "gateway/proxy/upstream_pool.hpp"
#include "gateway/proxy/upstream_tls.hpp"

namespace gateway::proxy {

struct proxy_options {
  // "http://HOST:PORT" or "https://HOST[:PORT]", or a group:
  // "URL[;weight=N],URL..." (upstream_group.hpp)
  std::string backend_url;
  std::string strip_prefix = "/api";  // removed from the path; "" keeps it
  bool upstream_host = false;         // Host: the backend's authority, not the client's
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(2);
  // Request written and response head received within this, else 504,
  // counted from the first send across a retry and a failover; also the
  // longest silence tolerated mid-body before the response is cut.
  std::chrono::nanoseconds response_timeout = std::chrono::seconds(30);
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(30);  // pooled connection lifetime when unused
  std::uint32_t max_idle = 64;                // idle pooled connections per worker
  std::size_t buffer_size = 32 * 1024;        // per in-flight response longer than 2 KiB (at least 4 KiB)
  std::size_t max_response_head = 64 * 1024;  // larger heads get 502
  std::uint32_t max_response_fields = 256;    // more fields get 502
  // Counters shared by every worker's pool (metrics and tests read them from
  // any thread). Created by make_proxy_handler when null.
  std::shared_ptr<upstream_stats> stats;
  // https members (upstream_tls.hpp): the client TLS context, shared by
  // every worker and route of a configuration; built from tls_options by
  // make_proxy when null and some member is https.
  upstream_tls_options tls_options;
  std::shared_ptr<upstream_tls> tls;

  // Groups (upstream_group.hpp, health_check.hpp).
  balance_kind balance = balance_kind::round_robin;
  health_policy health;
  std::uint32_t retry_budget_percent = 20;  // 0: never another member
  std::uint32_t retry_min_per_second = 3;   // per worker, whatever the percentage
  health_check_options check;               // check.path empty: no active checks
  // Host names (name_resolver.hpp): a member given by name is one member
  // per address the name has in `names` ("URL (ADDRESS)", with the URL's
  // weight), followed while the gateway runs. Null: make_proxy resolves the
  // names into a table of its own, once. A route without names never reads it.
  std::shared_ptr<name_table> names;
  // The shared states of a member list (name and order as given), kept by
  // the caller across reloads and address changes; null: fresh states.
  // Called on the worker's thread when a name's addresses change.
  std::function<std::vector<std::shared_ptr<member_state>>(const std::vector<core::backend_member>&)> member_states;
};

// Backend URL, timeouts and pool limits from the gateway's configuration.
proxy_options options_from_config(const core::config& cfg);

// Builds one worker's proxy (the answering layer of a proxied route) and its
// upstream pool, and registers the pool's drain in env.on_drain. Start-up
// only: throws std::invalid_argument for a bad backend URL, and
// std::runtime_error for a name it had to resolve itself and could not
// (never per request).
http::layer_ptr make_proxy(net::worker_env& env, proxy_options opts);

}  // namespace gateway::proxy
