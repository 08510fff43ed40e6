#pragma once
// Force-included before every translation unit of the io_uring build
// (cmake/io_uring.cmake, GATEWAY_IO_URING=ON; never in the epoll build).
// Three adjustments to Asio 1.22's io_uring service, for Asio's calls only.
//
// 1. Cancellations without user_data.
// Asio 1.22's io_uring service submits its cancellations
// (io_uring_prep_cancel: socket::cancel, close with an operation pending,
// per-operation cancellation such as awaitable_operators' ||) and the
// timeout_remove of a timed run without setting the entry's user_data, and
// liburing 2.3 neither clears a submission entry it hands out nor sets
// user_data in its prep helpers. Such an entry keeps the user_data of
// whatever used its ring slot before (the slots are reused once the ring's
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
//
// 2. The ring's size. Asio asks for 16,384 submission entries per ring
// (and the kernel makes twice as many completion entries): 1.6 MiB of
// rings per worker, all of it resident once the ring has gone round. Asio
// submits every 128 entries (submit_batch_size), and when the submission
// queue is full, so few entries are ever in use; the completion queue
// holds what the kernel finishes before the worker reaps it, at most the
// operations pending, one or two per connection. 4,096 entries (8,192
// completions, 0.4 MiB per worker) cover the 2,000-connection load;
// completions beyond the queue wait in the kernel's overflow list
// (IORING_FEAT_NODROP, Linux 5.5; Asio asks for 5.10), so none is lost at
// higher counts.
//
// 3. The ring's setup flags. Asio sets up its ring with no flags. Then,
// when a socket of a worker turns ready (on loopback: inside the peer's
// send, often on the other core), the kernel queues the retry of the
// worker's receive as task work and, if the worker is running, interrupts
// its core with an inter-processor interrupt to run it at once. The rings
// here add IORING_SETUP_COOP_TASKRUN (Linux 5.19): no interrupt; the task
// work runs at the worker's next entry into the kernel. With
// IORING_SETUP_TASKRUN_FLAG the kernel also marks the ring
// (IORING_SQ_TASKRUN) while task work waits, and liburing's
// io_uring_peek_cqe, which Asio's scheduler calls once per pass of the
// worker's handler queue, enters the kernel to run it when it finds no
// completion: a completion is seen at the scheduler's next look at the
// ring, never later, and a sleeping worker is woken as before. Neither
// flag ties the ring to one thread, so Asio's other threads may still
// submit the NOP that wakes a worker. A kernel that does not know a flag refuses
// the ring with EINVAL; the ring is then set up again with Asio's flags
// alone, so the gateway runs on older kernels as before.
//
// net/io_backend.cpp's probe sets up its ring through the same call.
#if defined(GATEWAY_IO_URING)
#include <liburing.h>

#include <cerrno>

inline void gateway_io_uring_prep_cancel(io_uring_sqe* sqe, void* user_data, int flags) {
  io_uring_prep_cancel(sqe, user_data, flags);
  io_uring_sqe_set_data(sqe, nullptr);
}

inline void gateway_io_uring_prep_timeout_remove(io_uring_sqe* sqe, __u64 user_data, unsigned flags) {
  io_uring_prep_timeout_remove(sqe, user_data, flags);
  io_uring_sqe_set_data(sqe, nullptr);
}

inline constexpr unsigned gateway_io_uring_entries = 4096;

inline constexpr unsigned gateway_io_uring_setup_flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;

inline int gateway_io_uring_queue_init(unsigned /*asio's entries*/, io_uring* ring, unsigned flags) {
  const int result = io_uring_queue_init(gateway_io_uring_entries, ring, flags | gateway_io_uring_setup_flags);
  if (result != -EINVAL) return result;
  return io_uring_queue_init(gateway_io_uring_entries, ring, flags);
}

#define io_uring_queue_init gateway_io_uring_queue_init
#define io_uring_prep_cancel gateway_io_uring_prep_cancel
#define io_uring_prep_timeout_remove gateway_io_uring_prep_timeout_remove
#endif
