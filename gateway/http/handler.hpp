#pragma once
// The middleware contract (the seed's `func(http.Handler) http.Handler`):
// a handler is a coroutine from an exchange (request, response to fill,
// per-request context) to completion; a middleware takes the next handler
// and returns a handler. Chains are composed once per worker at start-up and
// are immutable afterwards; a handler is only ever called on its worker's
// thread, so per-worker state needs no locks.
//
// Request lifecycle, in order (one header to find it all):
//   net/listener      accept, connection cap
//   net/connection    read head (llhttp + strict checks, 400/408/431),
//                     read body once into the arena (413/408), 100-continue
//   chain             body limit -> request id -> metrics -> logging
//                     -> compression -> router (unknown path: 404 here)
//                     -> the route's rate limit -> auth -> [validation]
//                     -> route handler (admin/* or proxy/*)
//   net/connection    write head + body (or stream a proxied body), keep-alive
//   arena reset       every byte of the request released together
#include <asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "gateway/core/arena.hpp"
#include "gateway/http/message.hpp"

namespace asio::ip {
class tcp;
}

namespace gateway::http {

struct request_context {
  core::arena* mem = nullptr;
  std::string_view client_ip;       // textual, e.g. "127.0.0.1" or "::1"
  std::string_view client_address;  // "ADDRESS:PORT" ("[::1]:PORT"), the seed's RemoteAddr
  std::chrono::steady_clock::time_point start;
  unsigned worker = 0;
  std::uint64_t connection_id = 0;
  std::string_view request_id;
  // Set by the route that matched (for metrics and logs); a pattern, so
  // it is bounded by the number of configured routes.
  std::string_view route;
  // Set by the proxy: the backend it sent the request to ("HOST:PORT"),
  // for the access log. Empty for answers the gateway gives itself.
  std::string_view upstream;
  // While the proxy holds an upstream connection it registers a way to
  // abort it here, so a hard shutdown can cancel that work too.
  void (*abort_upstream)(void*) = nullptr;
  void* abort_upstream_arg = nullptr;
  // While the proxy waits on the backend it sets a deadline here; the
  // worker's periodic sweep (the same one that enforces the client-side
  // timeouts) calls upstream_expired(abort_upstream_arg) once it passes.
  // One clock for every timeout: no timer, and no race, per request.
  std::chrono::steady_clock::time_point upstream_deadline = std::chrono::steady_clock::time_point::max();
  void (*upstream_expired)(void*) = nullptr;
};

struct exchange {
  request req;
  response res;
  request_context ctx;

  core::arena& mem() const noexcept { return *ctx.mem; }
};

class handler {
 public:
  virtual ~handler() = default;
  virtual asio::awaitable<void> handle(exchange& ex) = 0;
};

using handler_ptr = std::unique_ptr<handler>;
using middleware = std::function<handler_ptr(handler_ptr next)>;

// Wraps `terminal` so that `layers[0]` is outermost.
handler_ptr compose(std::vector<middleware> layers, handler_ptr terminal);

// Fills `ex.res` with a plain-text error body "message\n" (as the seed's
// http.Error did). The text is copied into the request arena.
void respond_text(exchange& ex, int status, std::string_view message);

// Fills `ex.res` with a JSON body (copied into the arena).
void respond_json(exchange& ex, int status, std::string_view json);

// A layer whose work before and after the inner layers is synchronous (an
// id, a metric, a log line, a body to decode or compress). Consecutive hook
// layers of a chain share one coroutine frame per request instead of one
// each: under load every frame is a heap allocation and a resumption.
class hook {
 public:
  virtual ~hook() = default;
  // Before the inner layers. Returns false once it has answered the request
  // itself (ex.res is set): the inner layers and this hook's after() are
  // skipped, the after() of the hooks outside it still run. `state` is the
  // hook's scratch for this request (null on entry), handed to after().
  virtual bool before(exchange& ex, void*& state) = 0;
  // After the inner layers have produced ex.res, innermost hook first.
  virtual void after(exchange& ex, void* state) = 0;
};

// A middleware made of a hook, built once per chain by `make`. When the
// next layer is made of hooks too, this one joins its frame.
middleware hook_middleware(std::function<std::unique_ptr<hook>()> make);

// An awaitable with nothing to do. A layer with no work after the next one
// can be a plain function instead of a coroutine: it returns
// next->handle(ex) as is (no coroutine frame of its own, one heap
// allocation less per request under load) or, when it answers itself,
// answered().
asio::awaitable<void> answered();

}  // namespace gateway::http
