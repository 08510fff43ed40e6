#pragma once
// Active health checks: `GET PATH` to one group member every `interval`, on
// a worker's own event loop (no thread of its own). A check passes when a
// status line 2xx comes back within `timeout` (connect included); after
// `unhealthy` failed checks in a row the member is marked down, after
// `healthy` passed checks in a row it is marked up again (it starts up).
// The verdict goes to the member's shared state (upstream_group.hpp), which
// every worker's balancer reads; each member is checked by one worker only
// (make_proxy spreads them). An https member is checked over TLS, verified
// as its requests are (upstream_tls.hpp), on a new connection each time
// that resumes the checker's last session.
//
// Lifetime: a checker is a coroutine holding its own state by shared_ptr.
// stop() (from the worker's on_drain, or posted by the owner's destructor)
// runs on the worker's thread: it cancels the timer and closes the socket,
// and the coroutine ends at its next resumption, so the worker's io_context
// can run dry at shutdown. A checker never started (its owner gone first)
// never runs.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "gateway/proxy/upstream_group.hpp"
#include "gateway/proxy/upstream_tls.hpp"

namespace gateway::proxy {

struct health_check_options {
  std::string path;  // empty: no active checks
  std::chrono::nanoseconds interval = std::chrono::seconds(5);
  std::chrono::nanoseconds timeout = std::chrono::seconds(1);
  std::uint32_t healthy = 2;    // passed checks in a row that mark a member up
  std::uint32_t unhealthy = 3;  // failed checks in a row that mark it down
};

class health_checker;

// Creates a checker for one member (not running yet). Any thread. `host`
// is the Host header; with `tls` (an https member) the check speaks TLS,
// with SNI and the certificate check against `tls_host`.
std::shared_ptr<health_checker> make_health_checker(asio::io_context& io, asio::ip::tcp::endpoint endpoint,
                                                    std::string host, std::shared_ptr<member_state> member,
                                                    health_check_options opts,
                                                    std::shared_ptr<upstream_tls> tls = nullptr,
                                                    std::string tls_host = {});
// The worker's thread: starts it (once), or stops it (idempotent; a
// stopped checker never starts).
void start(const std::shared_ptr<health_checker>& c);
void stop(health_checker& c) noexcept;

}  // namespace gateway::proxy
