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
//   client_gone()
//            the client's connection ended (end of stream or an error) while
//            the handler had its client watch on (watch_client(true)): end
//            the backend work now; the connection writes no response and
//            closes. The sweep looks at a watched request's client socket
//            (one poll() for all of them, net/worker.cpp) once the request
//            has been waiting since the sweep before, so a request answered
//            within a sweep period costs nothing: no system call, no
//            operation on the client socket.
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

  // The sweep, with the watch on: true from the second sweep that finds it
  // on (the request has then waited at least one sweep period), when the
  // client's socket is to be checked; the first only marks it seen.
  bool client_check_due() noexcept {
    if (watch_ == watch::off) return false;
    if (watch_ == watch::on) {
      watch_ = watch::seen;
      return false;
    }
    return true;
  }
  virtual void client_gone() noexcept = 0;

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
  // While on, a client that leaves ends the work through client_gone().
  // On while the handler waits for something the client still wants (the
  // proxy: the backend's response head), off once it has it.
  void watch_client(bool on) noexcept { watch_ = on ? watch::on : watch::off; }
  // The deadline passed: end the pending backend operation (closing the
  // socket does), which then reports the timeout.
  virtual void expire() noexcept = 0;

 private:
  enum class watch : unsigned char { off, on, seen };
  clock::time_point deadline_ = clock::time_point::max();
  watch watch_ = watch::off;
};

}  // namespace gateway::http
