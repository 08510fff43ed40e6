#pragma once
// Awaiting one Asio socket operation from an asio::awaitable coroutine
// without the coroutine frame that asio::use_awaitable allocates for it.
//
// `co_await sock.async_read_some(b, use_awaitable)` calls Asio's
// async_result<use_awaitable_t>::initiate, itself a coroutine: each operation
// allocates a frame, pushes it on the awaitable thread's stack, and on
// completion writes the result into it, pops it, resumes the caller (which
// reads the result out of it) and frees it. Under load that frame has gone
// cold while the operation waited, so every operation costs a few cache
// misses for bookkeeping only. Here the completion handler writes the result
// straight into a variable of the awaiting coroutine and resumes that
// coroutine, the top of the stack, directly:
//
//   net::io_result r;
//   co_await net::direct(r, [&](auto handler) { sock.async_read_some(b, std::move(handler)); });
//   auto [ec, n] = r;
//
// `start` runs once the coroutine is suspended (as Asio's own initiation
// does, so a completion on another thread cannot race the suspension); it
// must start exactly one operation with the handler it is given, which
// completes with (error_code, size_t). The handler is the awaitable thread,
// as Asio's own awaitable_handler is: it carries the coroutine's executor and
// cancellation slot, so cancellation (a hard abort's terminal signal) and
// the recycling allocator behave as with use_awaitable.
//
// This reaches into asio::detail (awaitable_thread, awaitable_frame_base):
// written against Asio 1.22 (Debian 12), checked by the static_assert below;
// another Asio version must be checked before the assert is moved.
#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/version.hpp>
#include <cstddef>
#include <system_error>
#include <tuple>
#include <utility>

namespace gateway::net {

static_assert(ASIO_VERSION == 102201, "net/direct_op.hpp uses Asio 1.22.1's awaitable internals: check them");

using io_result = std::tuple<std::error_code, std::size_t>;

class direct_handler : public asio::detail::awaitable_thread<asio::any_io_executor> {
 public:
  using frame_type = asio::detail::awaitable_frame_base<asio::any_io_executor>;
  using thread_type = asio::detail::awaitable_thread<asio::any_io_executor>;

  direct_handler(frame_type* frame, io_result* out) noexcept
      : thread_type(std::move(*frame->detach_thread())), frame_(frame), out_(out) {}

  void operator()(std::error_code ec, std::size_t n) {
    *out_ = io_result{ec, n};
    frame_->attach_thread(this);
    frame_->clear_cancellation_slot();
    this->pump();
  }

 private:
  frame_type* frame_;  // the awaiting coroutine's frame, the top of the thread's stack
  io_result* out_;     // in that frame
};

// The awaitable: Asio's awaitable_frame_base::await_transform accepts a
// function of the suspended frame that returns the thread it resumes (none:
// the handler resumes it).
template <class Start>
auto direct(io_result& out, Start start) {
  return [&out, start = std::move(start)](direct_handler::frame_type* frame) mutable -> direct_handler::thread_type* {
    start(direct_handler(frame, &out));
    return nullptr;
  };
}

// On the io_uring backend, marks the receive that `start` prepares on this
// thread, within the guard's life, as one that almost surely finds no data
// yet (the reply to what was just sent): it is submitted with
// IORING_RECVSEND_POLL_FIRST (net/io_uring_sqe_fix.hpp), so the kernel arms
// the readiness poll at once instead of first trying a receive that fails.
// Set around the initiating call only, which prepares the submission entry
// before it returns; a receive that is not prepared there (another one is
// queued on the socket) clears it on the way out. Nothing on epoll.
class empty_read_hint {
 public:
#if defined(GATEWAY_IO_URING)
  explicit empty_read_hint(bool on) noexcept { gateway_io_uring_expect_empty = on; }
  ~empty_read_hint() { gateway_io_uring_expect_empty = false; }
#else
  explicit empty_read_hint(bool) noexcept {}
#endif
  empty_read_hint(const empty_read_hint&) = delete;
  empty_read_hint& operator=(const empty_read_hint&) = delete;
};

}  // namespace gateway::net
