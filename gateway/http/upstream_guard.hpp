#pragma once
// The connection's handle on a request's backend work. A handler that talks
// to a backend on the request's behalf (the proxy's response, a WebSocket
// tunnel) implements this and registers itself in request_context::guard
// for as long as it holds backend sockets; the connection serving the
// request and its worker's sweep reach it only through this interface.
//
//   abort()  hard shutdown (the drain deadline passed): close the backend
//            sockets now; whatever the handler awaits completes with an
//            error, which it reports as aborted.
//   poll()   called by the worker's sweep, which enforces every timeout of
//            the worker on one clock (no timer per request): once the
//            deadline set with arm() has passed, expire() runs, once.
//
// Thread: the worker's, like the request. The guard lives in the request
// arena and unregisters (or is unregistered) before the arena resets.
#include <chrono>

#include "gateway/core/coarse_clock.hpp"

namespace gateway::http {

class upstream_guard {
 public:
  using clock = std::chrono::steady_clock;

  virtual void abort() noexcept = 0;

  void poll(clock::time_point now) noexcept {
    if (deadline_ > now) return;
    deadline_ = clock::time_point::max();
    expire();
  }

 protected:
  upstream_guard() = default;
  ~upstream_guard() = default;
  upstream_guard(const upstream_guard&) = delete;
  upstream_guard& operator=(const upstream_guard&) = delete;

  // The sweep calls expire() once `timeout` from now has passed, unless
  // disarm() or another arm() comes first.
  void arm(std::chrono::nanoseconds timeout) noexcept { deadline_ = core::coarse_steady_now() + timeout; }
  // The same with the deadline given (on the coarse clock); one already
  // past expires at the next sweep.
  void arm_until(clock::time_point deadline) noexcept { deadline_ = deadline; }
  void disarm() noexcept { deadline_ = clock::time_point::max(); }
  // The deadline passed: end the pending backend operation (closing the
  // socket does), which then reports the timeout.
  virtual void expire() noexcept = 0;

 private:
  clock::time_point deadline_ = clock::time_point::max();
};

}  // namespace gateway::http
