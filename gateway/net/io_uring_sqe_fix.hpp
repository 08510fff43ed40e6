#pragma once
// Force-included before every translation unit of the io_uring build
// (cmake/io_uring.cmake, GATEWAY_IO_URING=ON; never in the epoll build).
//
// Asio 1.22's io_uring service submits its cancellations
// (io_uring_prep_cancel: socket::cancel, close with an operation pending,
// per-operation cancellation such as awaitable_operators' ||) and the
// timeout_remove of a timed run without setting the entry's user_data, and
// liburing 2.3 neither clears a submission entry it hands out nor sets
// user_data in its prep helpers. Such an entry keeps the user_data of
// whatever used its ring slot before (the slots are reused once the 16,384
// entries have gone round), usually the address of some socket's operation
// queue, so its completion is taken for that socket's completion: a read
// "completes" with the cancellation's result (0: end of stream) while the
// kernel still holds the real read, which later completes the next
// operation or nothing. Under load a ring goes round in seconds, and then
// operations finish wrongly or never (a drain that waits forever).
//
// The two prep helpers are replaced here, for Asio's calls only, by ones
// that also set user_data to 0, which Asio's completion loop skips. Where
// Asio does set user_data after the prep (update_timeout), its value wins.
#if defined(GATEWAY_IO_URING)
#include <liburing.h>

inline void gateway_io_uring_prep_cancel(io_uring_sqe* sqe, void* user_data, int flags) {
  io_uring_prep_cancel(sqe, user_data, flags);
  io_uring_sqe_set_data(sqe, nullptr);
}

inline void gateway_io_uring_prep_timeout_remove(io_uring_sqe* sqe, __u64 user_data, unsigned flags) {
  io_uring_prep_timeout_remove(sqe, user_data, flags);
  io_uring_sqe_set_data(sqe, nullptr);
}

#define io_uring_prep_cancel gateway_io_uring_prep_cancel
#define io_uring_prep_timeout_remove gateway_io_uring_prep_timeout_remove
#endif
