#ifndef GATEWAY_TESTS_SUPPORT_IO_SHIM_H
#define GATEWAY_TESTS_SUPPORT_IO_SHIM_H
/* The counters io_shim.c keeps in the file named by GATEWAY_IO_SHIM_FILE.
 * The test creates the file (zeroed, this size), maps it, starts the program
 * with the shim preloaded, and reads the counters before and after what it
 * measures. Shared by C (the shim) and C++ (the test). */
#ifdef __cplusplus
#include <atomic>
#include <cstdint>
#define GATEWAY_IO_SHIM_U64 std::atomic<std::uint64_t>
#else
#include <stdatomic.h>
#include <stdint.h>
#define GATEWAY_IO_SHIM_U64 _Atomic uint64_t
#endif

struct gateway_io_counts {
  /* Set by the test: reads from a socket whose local port is this one count
   * as client reads (the program's listening port); 0 until it is known. */
  GATEWAY_IO_SHIM_U64 client_port;
  GATEWAY_IO_SHIM_U64 client_read_bytes; /* read from client sockets */
  GATEWAY_IO_SHIM_U64 other_read_bytes;  /* read from any other socket */
  GATEWAY_IO_SHIM_U64 alloc_calls;       /* malloc-family calls (heap counting builds only) */
  GATEWAY_IO_SHIM_U64 alloc_bytes;       /* bytes those calls asked for */
};

#undef GATEWAY_IO_SHIM_U64
#endif
