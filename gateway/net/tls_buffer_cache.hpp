#pragma once
// OpenSSL's record buffers, recycled per thread.
//
// With SSL_MODE_RELEASE_BUFFERS (tls_context.cpp) OpenSSL frees a
// connection's 16 KiB read buffer whenever it is empty and its write buffer
// after every write, and allocates them again for the next record: two
// large mallocs and frees per HTTPS request, which glibc serves from its
// bins with locks (the workers are threads) and cold memory. The cache
// keeps up to max_blocks freed blocks of that size per thread and hands
// them back to the next record, so an idle connection still holds no
// record buffer while a busy worker stops paying malloc for them.
//
// install_tls_buffer_cache() routes OpenSSL's allocations
// (CRYPTO_set_mem_functions) through it; OpenSSL accepts that only before
// its first allocation, so the gateway calls it first thing in main().
// Everything else passes straight to malloc, realloc and free.
//
// The cache's blocks are aligned to block_align, so a free tells them from
// OpenSSL's other blocks (hundreds per handshake) by the address alone;
// only an aligned one has its size asked (malloc_usable_size reads the
// block's header and its neighbour's).
//
// Thread safety: each thread has its own cache; a block freed on another
// thread than the one that allocated it joins that thread's cache (or goes
// back to free). A thread's cache is freed when the thread exits; frees
// after that go to free.
#include <cstddef>

namespace gateway::net {

struct tls_buffer_cache {
  // Requests in [block_min, block_size] bytes are served with a block of
  // block_size bytes (a TLS record buffer: 16 KiB of payload plus header,
  // tag and alignment, RFC 8446 section 5.2).
  static constexpr std::size_t block_min = 16 * 1024;
  static constexpr std::size_t block_size = 18 * 1024;
  // Every block the cache allocates starts at a multiple of this.
  static constexpr std::size_t block_align = 4096;
  // Blocks kept per thread at most (the rest are freed).
  static constexpr std::size_t max_blocks = 8;

  static void* allocate(std::size_t n) noexcept;
  static void* reallocate(void* p, std::size_t n) noexcept;
  static void release(void* p) noexcept;
  // Blocks this thread's cache holds now.
  static std::size_t cached_for_test() noexcept;
  // install_tls_buffer_cache() succeeded in this process.
  static bool installed() noexcept;
};

// True if OpenSSL now allocates through tls_buffer_cache; false if OpenSSL
// had already allocated (it keeps its own functions then).
bool install_tls_buffer_cache() noexcept;

}  // namespace gateway::net
