/* A shim that logs, and can refuse, the setup flags a program asks liburing's
 * io_uring_queue_init for:
 *   LD_PRELOAD=libgateway_uring_flags_shim.so [URING_FLAGS_SHIM_ACCEPT=MASK] program...
 * Every call is written to stderr as
 *   "uring_flags_shim: io_uring_queue_init flags 0x... -> RESULT"
 * With URING_FLAGS_SHIM_ACCEPT (a number, e.g. 0x7f for the flags Linux
 * 5.10 knows) a call asking for a flag outside MASK returns -EINVAL without
 * a ring, as io_uring_setup does on a kernel that does not know the flag;
 * other calls reach liburing's own function. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
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
