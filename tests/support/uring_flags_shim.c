/* A shim that logs, and can refuse, the setup flags a program asks liburing's
 * io_uring_queue_init for:
 *   LD_PRELOAD=libgateway_uring_flags_shim.so [URING_FLAGS_SHIM_ACCEPT=MASK] program...
 * Every call is written to stderr as
 *   "uring_flags_shim: io_uring_queue_init flags 0x... -> RESULT"
 * With URING_FLAGS_SHIM_ACCEPT (a number, e.g. 0x7f for the flags Linux
 * 5.10 knows) a call asking for a flag outside MASK returns -EINVAL without
 * a ring, as io_uring_setup does on a kernel that does not know the flag;
 * other calls reach liburing's own function.
 * It also counts the socket receives and sends in the entries each
 * io_uring_submit call hands to the kernel (Asio submits through it alone)
 * and writes them to stderr when the program exits, as
 *   "uring_flags_shim: submitted recvmsg N recv N poll_first N sendmsg N send N"
 * where poll_first counts the receives marked IORING_RECVSEND_POLL_FIRST. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <liburing.h>

typedef int (*queue_init_fn)(unsigned, struct io_uring*, unsigned);

int io_uring_queue_init(unsigned entries, struct io_uring* ring, unsigned flags) {
  const char* accept = getenv("URING_FLAGS_SHIM_ACCEPT");
  const unsigned mask = accept != NULL ? (unsigned)strtoul(accept, NULL, 0) : ~0u;
  int result = -EINVAL;
  if ((flags & ~mask) == 0) {
    queue_init_fn real = (queue_init_fn)dlsym(RTLD_NEXT, "io_uring_queue_init");
    result = real != NULL ? real(entries, ring, flags) : -ENOSYS;
  }
  fprintf(stderr, "uring_flags_shim: io_uring_queue_init flags 0x%x -> %d\n", flags, result);
  return result;
}

static atomic_ulong recvmsg_count, recv_count, poll_first_count, sendmsg_count, send_count;

typedef int (*submit_fn)(struct io_uring*);

int io_uring_submit(struct io_uring* ring) {
  /* The entries prepared since the last submission: between sqe_head and
   * sqe_tail (liburing 2.3), handed to the kernel by the call below. */
  for (unsigned i = ring->sq.sqe_head; i != ring->sq.sqe_tail; ++i) {
    const struct io_uring_sqe* sqe = &ring->sq.sqes[i & ring->sq.ring_mask];
    switch (sqe->opcode) {
      case IORING_OP_RECVMSG: atomic_fetch_add(&recvmsg_count, 1); break;
      case IORING_OP_RECV: atomic_fetch_add(&recv_count, 1); break;
      case IORING_OP_SENDMSG: atomic_fetch_add(&sendmsg_count, 1); break;
      case IORING_OP_SEND: atomic_fetch_add(&send_count, 1); break;
      default: continue;
    }
    if ((sqe->opcode == IORING_OP_RECVMSG || sqe->opcode == IORING_OP_RECV) &&
        (sqe->ioprio & IORING_RECVSEND_POLL_FIRST) != 0)
      atomic_fetch_add(&poll_first_count, 1);
  }
  submit_fn real = (submit_fn)dlsym(RTLD_NEXT, "io_uring_submit");
  return real != NULL ? real(ring) : -ENOSYS;
}

__attribute__((destructor)) static void report_submitted(void) {
  fprintf(stderr, "uring_flags_shim: submitted recvmsg %lu recv %lu poll_first %lu sendmsg %lu send %lu\n",
          atomic_load(&recvmsg_count), atomic_load(&recv_count), atomic_load(&poll_first_count),
          atomic_load(&sendmsg_count), atomic_load(&send_count));
}
