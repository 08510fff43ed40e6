#include "gateway/core/arena.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <string_view>

using namespace gateway::core;

TEST_CASE("the arena reuses its first block and releases the rest on reset", "[unit][core]") {
  arena a(1024);
  void* p1 = a.allocate(100);
  a.reset();
  void* p2 = a.allocate(100);
  CHECK(p1 == p2);  // first block kept
  CHECK(a.extra_bytes() == 0);
  a.allocate(1u << 20);
  CHECK(a.extra_bytes() >= (1u << 20));
  a.reset();
  CHECK(a.extra_bytes() == 0);
  CHECK(a.bytes_used() == 0);

  // grow() extends the last allocation in place when it can.
  char* g = static_cast<char*>(a.allocate(10, 1));
  std::memcpy(g, "0123456789", 10);
  char* g2 = a.grow(g, 10, 20);
  CHECK(g2 == g);
  char* g3 = a.grow(g2, 20, 64 * 1024);
  CHECK(std::string_view(g3, 10) == "0123456789");

  // Destructors of arena objects run at reset.
  int destroyed = 0;
  struct probe {
    int* counter;
    ~probe() { ++*counter; }
  };
  a.make<probe>(probe{&destroyed});
  a.make<probe>(probe{&destroyed});
  int temporaries = destroyed;  // the two probe{} arguments
  a.reset();
  CHECK(destroyed == temporaries + 2);
}

TEST_CASE("an arena allocation grown by doubling holds only its current block, not every one it went through",
          "[unit][core]") {
  arena a(4096);
  a.allocate(100);  // the first block, with room left for small ones
  std::size_t size = 16 * 1024;
  char* body = a.grow(nullptr, 0, size);
  std::memset(body, 'a', size);
  for (int i = 0; i < 6; ++i) {  // 16 KiB to 1 MiB
    body = a.grow(body, size, size * 2);
    CHECK(body[0] == 'a');
    CHECK(body[size - 1] == 'a');
    std::memset(body + size, 'a', size);
    size *= 2;
  }
  CHECK(size == (1u << 20));
  // One block of the final size (and its header), not the 2 MiB that all
  // the sizes together would take.
  CHECK(a.extra_bytes() >= size);
  CHECK(a.extra_bytes() < size + 4096);
  // Small allocations made meanwhile keep their shared block.
  auto* small = static_cast<char*>(a.allocate(64, 1));
  std::memset(small, 'b', 64);
  body = a.grow(body, size, size * 2);
  CHECK(small[63] == 'b');
  CHECK(body[size - 1] == 'a');
  a.reset();
  CHECK(a.extra_bytes() == 0);
}

TEST_CASE("a body-sized arena allocation gets its own block and small ones stay in the current block",
          "[unit][core]") {
  arena a(8 * 1024);
  char* small1 = static_cast<char*>(a.allocate(512, 1));
  char* big = static_cast<char*>(a.allocate(32 * 1024, 1));
  const std::size_t after_big = a.extra_bytes();
  CHECK(after_big >= 32 * 1024);
  CHECK(after_big < 33 * 1024);  // exactly its own block, no spare
  std::memset(big, 'x', 32 * 1024);  // usable in full (ASan checks the bounds)
  // The first block still serves small allocations: no fresh 16 KiB block.
  char* small2 = static_cast<char*>(a.allocate(1024, 1));
  CHECK(a.extra_bytes() == after_big);
  CHECK(small2 >= small1 + 512);
  CHECK(small2 < small1 + 8 * 1024);
  CHECK((big + 32 * 1024 <= small1 || big >= small1 + 8 * 1024));  // no overlap
  CHECK(a.bytes_used() == 512 + 32 * 1024 + 1024);
  a.reset();
  CHECK(a.extra_bytes() == 0);
}

TEST_CASE("an arena on a block pool gives its first block back when released and takes it again",
          "[unit][core]") {
  block_pool pool(arena::default_first_block, 2);
  arena a(pool);
  CHECK_FALSE(a.holds_first_block());
  void* p1 = a.allocate(100);
  CHECK(a.holds_first_block());
  CHECK(pool.size() == 0);
  a.release_first();
  CHECK_FALSE(a.holds_first_block());
  CHECK(pool.size() == 1);
  void* p2 = a.allocate(100);  // the same block, from the pool, not malloc
  CHECK(p2 == p1);
  CHECK(pool.size() == 0);

  // The pool keeps at most its cap; trim() empties it.
  arena b(pool), c(pool), d(pool);
  b.allocate(1);
  c.allocate(1);
  d.allocate(1);
  b.release_first();
  c.release_first();
  d.release_first();
  CHECK(pool.size() == 2);
  pool.trim();
  CHECK(pool.size() == 0);
  // An arena gone with its block gives it back too.
  {
    arena e(pool);
    e.allocate(1);
  }
  CHECK(pool.size() == 1);
}
