#include "gateway/net/tls_buffer_cache.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

using gateway::net::tls_buffer_cache;

namespace {

// Sizes OpenSSL 3.0 asks for a TLS record's read and write buffers.
constexpr std::size_t read_buffer = 16384 + 320 + 5 + 7;
constexpr std::size_t write_buffer = 16384 + 80 + 5 + 7 + 5 + 7 + 80;

// Empties this thread's cache, so each test starts from none.
void empty_cache() {
  std::vector<void*> taken;
  while (tls_buffer_cache::cached_for_test() > 0) taken.push_back(tls_buffer_cache::allocate(read_buffer));
  for (void* p : taken) std::free(p);
}

}  // namespace

TEST_CASE("tls buffer cache: a freed record buffer is handed to the next record-sized request on the thread",
          "[unit][net]") {
  empty_cache();
  void* p = tls_buffer_cache::allocate(read_buffer);
  REQUIRE(p != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(p) % tls_buffer_cache::block_align == 0);
  tls_buffer_cache::release(p);
  CHECK(tls_buffer_cache::cached_for_test() == 1);
  // The write buffer's size is served by the same block, and it is usable
  // for its whole length.
  void* q = tls_buffer_cache::allocate(write_buffer);
  CHECK(q == p);
  CHECK(tls_buffer_cache::cached_for_test() == 0);
  static_cast<char*>(q)[write_buffer - 1] = 1;
  tls_buffer_cache::release(q);
  empty_cache();
}

TEST_CASE("tls buffer cache: at most max_blocks are kept per thread, other sizes go straight to free",
          "[unit][net]") {
  empty_cache();
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < tls_buffer_cache::max_blocks + 3; ++i)
    blocks.push_back(tls_buffer_cache::allocate(read_buffer));
  for (void* p : blocks) tls_buffer_cache::release(p);
  CHECK(tls_buffer_cache::cached_for_test() == tls_buffer_cache::max_blocks);
  empty_cache();
  for (std::size_t n : {std::size_t{64}, tls_buffer_cache::block_min - 1, tls_buffer_cache::block_size + 100,
                        std::size_t{64 * 1024}}) {
    void* p = tls_buffer_cache::allocate(n);
    REQUIRE(p != nullptr);
    tls_buffer_cache::release(p);
    CHECK(tls_buffer_cache::cached_for_test() == 0);
  }
  tls_buffer_cache::release(nullptr);
  CHECK(tls_buffer_cache::cached_for_test() == 0);
  // A block of the cache's size that the cache did not allocate (not
  // aligned to block_align) goes to free, not into the cache.
  void* unaligned = nullptr;
  std::vector<void*> aligned_by_chance;
  for (int i = 0; i < 16 && unaligned == nullptr; ++i) {
    void* m = std::malloc(tls_buffer_cache::block_size);
    REQUIRE(m != nullptr);
    if (reinterpret_cast<std::uintptr_t>(m) % tls_buffer_cache::block_align != 0) unaligned = m;
    else aligned_by_chance.push_back(m);
  }
  for (void* m : aligned_by_chance) std::free(m);
  if (unaligned != nullptr) {
    tls_buffer_cache::release(unaligned);
    CHECK(tls_buffer_cache::cached_for_test() == 0);
  } else {
    // This allocator (TSan's) starts every block of this size on a page
    // boundary. Such a block of the cache's size class can serve any
    // cacheable request, and the cache keeps it.
    void* m = std::malloc(tls_buffer_cache::block_size);
    REQUIRE(m != nullptr);
    tls_buffer_cache::release(m);
    CHECK(tls_buffer_cache::cached_for_test() == 1);
    empty_cache();
  }
  // realloc keeps the bytes, whichever way the block came.
  auto* r = static_cast<char*>(tls_buffer_cache::allocate(100));
  r[0] = 'x';
  r = static_cast<char*>(tls_buffer_cache::reallocate(r, read_buffer));
  REQUIRE(r != nullptr);
  CHECK(r[0] == 'x');
  tls_buffer_cache::release(r);
  empty_cache();
}

TEST_CASE("tls buffer cache: each thread has its own blocks, freed when it exits (the ASan build checks for leaks)",
          "[unit][net]") {
  empty_cache();
  std::size_t seen_in_thread = 0;
  std::thread t([&] {
    for (int i = 0; i < 3; ++i) tls_buffer_cache::release(tls_buffer_cache::allocate(read_buffer));
    void* a = tls_buffer_cache::allocate(read_buffer);
    void* b = tls_buffer_cache::allocate(read_buffer);
    tls_buffer_cache::release(a);
    tls_buffer_cache::release(b);
    seen_in_thread = tls_buffer_cache::cached_for_test();
  });
  t.join();
  CHECK(seen_in_thread == 2);
  CHECK(tls_buffer_cache::cached_for_test() == 0);
}
