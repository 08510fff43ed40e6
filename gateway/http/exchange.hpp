#pragma once
// One request as the layers see it: the request, the response they fill,
// and what the connection knows about the request (its arena, the client,
// the clock). Every view points into the connection's read buffer or the
// request arena; nothing here outlives the request.
#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "gateway/core/arena.hpp"
#include "gateway/http/message.hpp"
#include "gateway/http/upstream_guard.hpp"

namespace gateway::core {
class budget_hold;
}

namespace gateway::http {

struct request_context {
  core::arena* mem = nullptr;
  std::string_view client_ip;       // textual, e.g. "127.0.0.1" or "::1"
  std::string_view client_address;  // "ADDRESS:PORT" ("[::1]:PORT"), the seed's RemoteAddr
  std::chrono::steady_clock::time_point start;
  // When the response was ready: read by the first elapsed() call (the
  // request log's and the metrics' layers each want it; one clock reading).
  std::chrono::steady_clock::time_point finished;
  std::chrono::nanoseconds elapsed() noexcept {
    if (finished == std::chrono::steady_clock::time_point{}) finished = std::chrono::steady_clock::now();
    return finished - start;
  }
  unsigned worker = 0;
  bool tls = false;  // the client's connection is TLS (X-Forwarded-Proto)
  std::uint64_t connection_id = 0;
  std::string_view request_id;
  // The body as the client sent it, before any layer replaced req.body
  // (the decompression layer does): what /logs shows.
  std::string_view received_body;
  // Set by the route that matched (for metrics and logs); a pattern, so
  // it is bounded by the number of configured routes.
  std::string_view route;
  // Set by the proxy: the backend it sent the request to ("HOST:PORT"),
  // for the access log. Empty for answers the gateway gives itself.
  std::string_view upstream;
  // The keyed digest of the API key this request presented
  // (middleware/api_keys.hpp), kept by the first layer that computes it
  // (the rate limit by API key) for the next (the API-key check), so that
  // a request's key is hashed once. `api_key_source` is the presented
  // key it was computed from (decoded, as middleware::presented_api_key
  // reads it), in the request's memory; empty when none was computed. A
  // layer uses the digest only for a key equal to those bytes.
  std::string_view api_key_source;
  std::array<unsigned char, 16> api_key_digest{};
  // This request's share of --body-budget (core/live_counters.hpp), held
  // by the connection until the request is over: a layer that buffers a
  // body of its own for the request (the decoded body) takes its room
  // here, so that it stays counted as long as its memory lives (the
  // request arena). Null when no connection serves the request.
  core::budget_hold* body_budget = nullptr;
  // The backend work of this request, while a handler holds backend
  // sockets (see upstream_guard.hpp); null otherwise.
  upstream_guard* guard = nullptr;
  // Run once by the connection when the request is over (its response
  // written, its tunnel closed, or the connection gone), before the chain
  // it came from may be let go: for a layer whose hold on something
  // outlasts its leave(), such as the concurrency limit's slot while the
  // backend's response streams. One per request; null when unused.
  void (*at_end)(void* arg) noexcept = nullptr;
  void* at_end_arg = nullptr;
};

struct exchange {
  request req;
  response res;
  request_context ctx;

  core::arena& mem() const noexcept { return *ctx.mem; }
};

// Fills `ex.res` with a plain-text error body "message\n" (as the seed's
// http.Error did). The text is copied into the request arena.
void respond_text(exchange& ex, int status, std::string_view message);

// Fills `ex.res` with a JSON body (copied into the arena).
void respond_json(exchange& ex, int status, std::string_view json);

}  // namespace gateway::http
