#pragma once
// Running a private io_context until its work is done, with an upper bound
// on the time it may take (start-up DNS lookups, the tests' deadlines).
//
// io_context::run_for and the other timed runs are not used for this: in
// Asio 1.22 they are broken on the io_uring backend (GATEWAY_IO_URING). A
// timed wait submits a timeout whose timespec lives on the waiting frame's
// stack and, when something else wakes it first, a timeout_remove whose
// user_data is never set (liburing's prep helpers leave the slot's old
// value); those completions arrive later as if they belonged to an I/O
// object's queue, complete the wrong operation and corrupt the heap. Plain
// run() waits without a timeout; a watchdog thread stops the context at the
// bound (stop() is safe from another thread).
//
// Thread: the caller's, which runs `io`; the watchdog is joined before the
// function returns.
#include <asio/io_context.hpp>
#include <chrono>

namespace gateway::net {

// Runs `io` until it has no more work (true) or until `limit` has passed and
// the watchdog stopped it (false).
bool run_bounded(asio::io_context& io, std::chrono::steady_clock::duration limit);

}  // namespace gateway::net
