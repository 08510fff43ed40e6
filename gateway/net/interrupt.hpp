#pragma once
// Ending the operation pending on a socket from outside the coroutine that
// awaits it (a timeout, a drain, a hard abort).
//
// Closing a socket under a pending operation is fine for Asio's epoll
// reactor, but not for its io_uring backend (GATEWAY_IO_URING): close()
// recycles the socket's per-descriptor state at once while the kernel still
// holds the operation, the next socket opened on that worker takes the state
// over, and the late completion is delivered to the new socket's operation
// (one connection's read resumes another's coroutine). interrupt() ends the
// operation and keeps the state: shutdown in both directions makes a pending
// or later read see end-of-stream and a later write fail, as close() would,
// and cancel() ends what shutdown does not wake (a connect, a wait). The
// coroutine that owns the socket closes it once its operation has returned.
//
// Thread: the socket's own (its io_context's) thread.
#include <asio/ip/tcp.hpp>
#include <system_error>

namespace gateway::net {

inline void interrupt(asio::ip::tcp::socket& s) noexcept {
  std::error_code ignored;
  s.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  s.cancel(ignored);
}

}  // namespace gateway::net
