#include "gateway/net/tls_buffer_cache.hpp"

#include <malloc.h>
#include <openssl/crypto.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace gateway::net {

namespace {

// Trivially destructible, so a free that OpenSSL makes while the thread is
// exiting (after the drain below ran) still finds it, closed.
struct block_stack {
  void* blocks[tls_buffer_cache::max_blocks];
  std::size_t count;
  bool closed;
};

thread_local block_stack cache{};
std::atomic<bool> installed_flag{false};

// Frees the thread's blocks when it exits. A thread_local with a destructor
// is constructed on first use, so every path that puts a block in the cache
// touches it first.
struct drain_at_exit {
  bool armed = false;
  ~drain_at_exit() {
    while (cache.count > 0) std::free(cache.blocks[--cache.count]);
    cache.closed = true;
  }
};

thread_local drain_at_exit drain;

bool cacheable(std::size_t n) noexcept {
  return n >= tls_buffer_cache::block_min && n <= tls_buffer_cache::block_size;
}

void* openssl_malloc(std::size_t n, const char*, int) { return tls_buffer_cache::allocate(n); }
void* openssl_realloc(void* p, std::size_t n, const char*, int) { return tls_buffer_cache::reallocate(p, n); }
void openssl_free(void* p, const char*, int) { tls_buffer_cache::release(p); }

}  // namespace

void* tls_buffer_cache::allocate(std::size_t n) noexcept {
  if (!cacheable(n)) return std::malloc(n);
  if (cache.count > 0) return cache.blocks[--cache.count];
  void* p = nullptr;
  return posix_memalign(&p, block_align, block_size) == 0 ? p : nullptr;
}

void* tls_buffer_cache::reallocate(void* p, std::size_t n) noexcept { return std::realloc(p, n); }

void tls_buffer_cache::release(void* p) noexcept {
  if (p == nullptr) return;
  // Only a block that can serve any cacheable request is kept: one this
  // cache allocated (aligned to block_align; most frees stop at this test),
  // or another aligned malloc block of that size class.
  if ((reinterpret_cast<std::uintptr_t>(p) & (block_align - 1)) != 0) {
    std::free(p);
    return;
  }
  const std::size_t usable = malloc_usable_size(p);
  if (usable >= block_size && usable < block_size + 64 && !cache.closed && cache.count < max_blocks) {
    drain.armed = true;
    cache.blocks[cache.count++] = p;
    return;
  }
  std::free(p);
}

std::size_t tls_buffer_cache::cached_for_test() noexcept { return cache.count; }

bool tls_buffer_cache::installed() noexcept { return installed_flag.load(std::memory_order_relaxed); }

bool install_tls_buffer_cache() noexcept {
  if (CRYPTO_set_mem_functions(openssl_malloc, openssl_realloc, openssl_free) != 1) return false;
  installed_flag.store(true, std::memory_order_relaxed);
  return true;
}

}  // namespace gateway::net
