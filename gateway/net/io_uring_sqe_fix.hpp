#pragma once
// Force-included before every translation unit of the io_uring build
// (cmake/io_uring.cmake, GATEWAY_IO_URING=ON; never in the epoll build).
// Five adjustments to Asio 1.22's io_uring service, for Asio's calls only.
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
//
// 4. Receives and sends of one buffer. Asio submits every socket receive
// as IORING_OP_RECVMSG and every send as IORING_OP_SENDMSG, each pointing
// at a msghdr and an iovec array in the operation, which the kernel copies
// in (io_msg_copy_hdr, copy_iovec_from_user) for every submission. A
// receive into one buffer (every receive of the gateway's sessions and
// upstream connections) becomes IORING_OP_RECV, and a send of one
// non-empty piece (a request head with no body goes out as head + empty
// body) IORING_OP_SEND: the buffer travels in the entry itself. Results and
// errors are the same; messages with an address or control data (not used
// on the gateway's TCP sockets) stay as Asio prepares them. Both operations
// exist since Linux 5.6 (Asio needs 5.10).
//
// 5. Receives that almost surely find nothing. A receive submitted right
// after the peer was sent something to answer (the backend's response
// after the request, the client's next request after the response) finds
// no data most of the time: the kernel then tries the receive, fails with
// EAGAIN, arms the readiness poll and retries from task work once data
// comes. The caller marks such a receive (net::empty_read_hint, around the
// initiating call: Asio's start_op prepares the entry before the call
// returns when no other receive is queued on the socket) and it is
// submitted with IORING_RECVSEND_POLL_FIRST (Linux 5.19): the poll is
// armed first (a socket that is ready already has its receive queued as
// task work at once). Other receives try first as before. The flag is only set where the
// rings took the setup flags of item 3 (the same kernel release), so an
// older kernel, which would refuse it, never sees it.
#if defined(GATEWAY_IO_URING)
#include <liburing.h>

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstddef>

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

// True once a ring was set up with the setup flags above, i.e. on Linux
// 5.19 or later, which also knows IORING_RECVSEND_POLL_FIRST (item 5).
inline std::atomic<bool> gateway_io_uring_poll_first_ok{false};

inline int gateway_io_uring_queue_init(unsigned /*asio's entries*/, io_uring* ring, unsigned flags) {
  const int result = io_uring_queue_init(gateway_io_uring_entries, ring, flags | gateway_io_uring_setup_flags);
  if (result == 0) gateway_io_uring_poll_first_ok.store(true, std::memory_order_relaxed);
  if (result != -EINVAL) return result;
  return io_uring_queue_init(gateway_io_uring_entries, ring, flags);
}

// Set by net::empty_read_hint (net/direct_op.hpp) around the call that
// starts a receive expected to find no data; read and cleared by the next
// receive prepared on this thread.
inline thread_local bool gateway_io_uring_expect_empty = false;

inline void gateway_io_uring_prep_recvmsg(io_uring_sqe* sqe, int fd, msghdr* msg, unsigned flags) {
  if (msg->msg_iovlen == 1 && msg->msg_name == nullptr && msg->msg_control == nullptr)
    io_uring_prep_recv(sqe, fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len, static_cast<int>(flags));
  else
    io_uring_prep_recvmsg(sqe, fd, msg, flags);
  if (gateway_io_uring_expect_empty && gateway_io_uring_poll_first_ok.load(std::memory_order_relaxed))
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  gateway_io_uring_expect_empty = false;
}

inline void gateway_io_uring_prep_sendmsg(io_uring_sqe* sqe, int fd, const msghdr* msg, unsigned flags) {
  if (msg->msg_name == nullptr && msg->msg_control == nullptr) {
    const iovec* one = nullptr;
    std::size_t pieces = 0;
    for (std::size_t i = 0; i < static_cast<std::size_t>(msg->msg_iovlen); ++i) {
      if (msg->msg_iov[i].iov_len == 0) continue;
      one = &msg->msg_iov[i];
      ++pieces;
    }
    if (pieces == 1) {
      io_uring_prep_send(sqe, fd, one->iov_base, one->iov_len, static_cast<int>(flags));
      return;
    }
  }
  io_uring_prep_sendmsg(sqe, fd, msg, flags);
}

#define io_uring_queue_init gateway_io_uring_queue_init
#define io_uring_prep_cancel gateway_io_uring_prep_cancel
#define io_uring_prep_timeout_remove gateway_io_uring_prep_timeout_remove
#define io_uring_prep_recvmsg gateway_io_uring_prep_recvmsg
#define io_uring_prep_sendmsg gateway_io_uring_prep_sendmsg
#endif
