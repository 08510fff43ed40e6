/* A shim for tests that measure a child process from outside its code:
 *   LD_PRELOAD=libgateway_io_shim.so GATEWAY_IO_SHIM_FILE=PATH program...
 * It counts into the shared counters in PATH (tests/support/io_shim.h):
 *  - bytes returned by read, readv, recv, recvfrom and recvmsg on sockets,
 *    split into client sockets (local port == client_port, which the test
 *    sets once it knows the program's port) and other sockets (a backend);
 *  - with GATEWAY_IO_SHIM_HEAP (plain builds only: ASan and TSan own malloc
 *    and operator new), every malloc, calloc, realloc, memalign,
 *    aligned_alloc and posix_memalign (operator new included: libstdc++'s
 *    calls malloc): one call and the bytes it asked for. Counted are the
 *    bytes asked for, not what is live, so a copy freed again still counts.
 * The work itself is done by the kernel (syscall) and glibc's __libc_*
 * allocator, so the program behaves as without the shim. Without the
 * variable (or if PATH cannot be mapped) nothing is counted. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tests/support/io_shim.h"

static struct gateway_io_counts* counts;

__attribute__((constructor)) static void map_counts(void) {
  const char* path = getenv("GATEWAY_IO_SHIM_FILE");
  if (path == NULL || *path == '\0') return;
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  void* p = mmap(NULL, sizeof(struct gateway_io_counts), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p != MAP_FAILED) counts = (struct gateway_io_counts*)p;
}

/* Adds `n` bytes read from `fd` to the client or the other counter; errno
 * is left as the read set it. */
static void count_read(int fd, long n) {
  struct gateway_io_counts* c = counts;
  if (c == NULL || n <= 0) return;
  const int saved = errno;
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr*)&local, &len) == 0) {
    unsigned port = 0;
    if (local.ss_family == AF_INET) port = ntohs(((struct sockaddr_in*)&local)->sin_port);
    else if (local.ss_family == AF_INET6) port = ntohs(((struct sockaddr_in6*)&local)->sin6_port);
    const uint64_t client = atomic_load_explicit(&c->client_port, memory_order_relaxed);
    if (client != 0 && port == client) atomic_fetch_add_explicit(&c->client_read_bytes, (uint64_t)n, memory_order_relaxed);
    else atomic_fetch_add_explicit(&c->other_read_bytes, (uint64_t)n, memory_order_relaxed);
  }
  errno = saved;
}

ssize_t read(int fd, void* buf, size_t n) {
  long r = syscall(SYS_read, fd, buf, n);
  count_read(fd, r);
  return r;
}

ssize_t readv(int fd, const struct iovec* iov, int iovcnt) {
  long r = syscall(SYS_readv, fd, iov, iovcnt);
  count_read(fd, r);
  return r;
}

ssize_t recv(int fd, void* buf, size_t n, int flags) {
  long r = syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
  count_read(fd, r);
  return r;
}

ssize_t recvfrom(int fd, void* buf, size_t n, int flags, struct sockaddr* from, socklen_t* from_len) {
  long r = syscall(SYS_recvfrom, fd, buf, n, flags, from, from_len);
  count_read(fd, r);
  return r;
}

ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  long r = syscall(SYS_recvmsg, fd, msg, flags);
  count_read(fd, r);
  return r;
}

#ifdef GATEWAY_IO_SHIM_HEAP
extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);
extern void __libc_free(void*);

static void count_alloc(size_t n) {
  struct gateway_io_counts* c = counts;
  if (c == NULL) return;
  atomic_fetch_add_explicit(&c->alloc_calls, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->alloc_bytes, n, memory_order_relaxed);
}

void* malloc(size_t n) {
  count_alloc(n);
  return __libc_malloc(n);
}

void* calloc(size_t n, size_t size) {
  count_alloc(n * size);
  return __libc_calloc(n, size);
}

void* realloc(void* p, size_t n) {
  count_alloc(n);
  return __libc_realloc(p, n);
}

void free(void* p) { __libc_free(p); }

void* memalign(size_t alignment, size_t n) {
  count_alloc(n);
  return __libc_memalign(alignment, n);
}

void* aligned_alloc(size_t alignment, size_t n) {
  count_alloc(n);
  return __libc_memalign(alignment, n);
}

int posix_memalign(void** out, size_t alignment, size_t n) {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  count_alloc(n);
  void* p = __libc_memalign(alignment, n);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}
#endif
