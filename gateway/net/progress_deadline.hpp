#pragma once
// The deadline of a write that moves on while the write makes progress:
// --write-timeout bounds the time a client takes no bytes, not the whole
// write (nginx's send_timeout and HAProxy's timeout client work the same
// way), so a slow but steady reader of a large response gets all of it.
// The session points it at its connection's deadline; the stream calls
// progressed() when a send of an unfinished write moved bytes.
// Thread: the connection's worker.
#include <chrono>

#include "gateway/core/coarse_clock.hpp"

namespace gateway::net {

struct progress_deadline {
  std::chrono::steady_clock::time_point* deadline = nullptr;
  std::chrono::nanoseconds timeout{};

  // Pushes the deadline `timeout` past now, unless none runs (max: a
  // handler or a tunnel, whose writes the sweep does not time, or a
  // deadline the sweep has just fired).
  void progressed() const noexcept {
    if (deadline != nullptr && *deadline != std::chrono::steady_clock::time_point::max())
      *deadline = core::coarse_steady_now() + timeout;
  }
};

}  // namespace gateway::net
