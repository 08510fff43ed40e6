#pragma once
// A cap on requests in flight to one backend, per worker (the global cap
// divided by the number of workers, so no lock is shared). A request over
// the cap waits, in arrival order, up to `queue_timeout` for a slot; then it
// gets 503 with Retry-After. Waiting costs one timer in the request arena;
// the queue is bounded by `max_waiters`, beyond which 503 is immediate.
//
// Thread: one instance per worker, used on that worker's thread only.
#include <chrono>
#include <cstdint>

#include "gateway/core/stats.hpp"
#include "gateway/http/layer.hpp"

namespace gateway::proxy {

struct concurrency_limit_options {
  std::uint32_t max_in_flight = 1024;  // this worker's share
  std::uint32_t max_waiters = 1024;
  std::chrono::nanoseconds queue_timeout = std::chrono::milliseconds(100);
};


// A layer for a route's policy, before the layer that talks to the backend:
// it holds a slot from enter() until leave() (the response head is in; a
// streamed body then flows without one).
// `rejected` (optional) counts the 503 answers.
http::layer_ptr make_concurrency_limit(concurrency_limit_options opts, core::stat* rejected = nullptr);

}  // namespace gateway::proxy
