#pragma once
// The per-request arena (after h2o's h2o_mem_pool_t): every byte a request
// needs (its header table, its body, response headers, middleware scratch)
// comes from here and is released together when the request ends.
//
// Ownership: one arena per connection, reset between requests. The first
// block is kept across resets, so a steady stream of small requests allocates
// nothing. Larger blocks (and every big body) are released by reset(), and the
// process sets a fixed mmap threshold (core/memory.hpp) so that they go back
// to the operating system at once.
//
// Between requests an idle keep-alive connection can hand its first block
// back to its worker's block_pool (release_first()), so 2,000 idle
// connections do not hold 2,000 blocks; the next request takes one back
// from the pool, without reaching malloc while the pool has one.
//
// Thread: not thread-safe; used only by the connection's coroutine (the
// pool: by its worker's thread).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

namespace gateway::core {

// Free first blocks of one size, for the arenas of one thread. Holds at
// most `max_blocks`; trim() frees them all (an idle worker gives its memory
// back).
class block_pool {
 public:
  block_pool(std::size_t block_size, std::size_t max_blocks) noexcept
      : block_size_(block_size), max_blocks_(max_blocks) {}
  block_pool(const block_pool&) = delete;
  block_pool& operator=(const block_pool&) = delete;
  ~block_pool() { trim(); }

  std::size_t block_size() const noexcept { return block_size_; }
  std::size_t size() const noexcept { return count_; }

  char* take() {
    if (head_ == nullptr) return static_cast<char*>(::operator new(block_size_));
    node* n = head_;
    head_ = n->next;
    --count_;
    return reinterpret_cast<char*>(n);
  }
  void give(char* block) noexcept {
    if (count_ >= max_blocks_) {
      ::operator delete(block);
      return;
    }
    auto* n = reinterpret_cast<node*>(block);
    n->next = head_;
    head_ = n;
    ++count_;
  }
  void trim() noexcept {
    while (head_ != nullptr) {
      node* n = head_;
      head_ = n->next;
      ::operator delete(n);
    }
    count_ = 0;
  }

 private:
  struct node {
    node* next;
  };
  std::size_t block_size_;
  std::size_t max_blocks_;
  node* head_ = nullptr;
  std::size_t count_ = 0;
};

class arena {
 public:
  static constexpr std::size_t default_first_block = 8 * 1024;

  explicit arena(std::size_t first_block_size = default_first_block) noexcept
      : first_size_(first_block_size) {}
  // An arena whose first block comes from (and goes back to) `pool`, which
  // must outlive it; the first block's size is the pool's.
  explicit arena(block_pool& pool) noexcept : first_size_(pool.block_size()), pool_(&pool) {}
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;
  ~arena() { release_first(); }

  // reset() and then hands the first block back (to the pool, if any): for
  // a connection about to wait idle. The next allocation takes one again.
  void release_first() noexcept {
    reset();
    if (first_ == nullptr) return;
    if (pool_ != nullptr) pool_->give(first_);
    else ::operator delete(first_);
    first_ = cur_ = end_ = nullptr;
  }
  bool holds_first_block() const noexcept { return first_ != nullptr; }

  // Uninitialised bytes aligned to `align`. Throws std::bad_alloc only when
  // the process is out of memory (callers above the arena cap sizes first).
  void* allocate(std::size_t n, std::size_t align = alignof(std::max_align_t)) {
    if (void* p = try_bump(n, align)) return p;
    return allocate_slow(n, align);
  }

  // Grows the most recent allocation in place when it is the last one made
  // and fits; otherwise copies it to a new allocation, and frees the old
  // one's block when that held nothing else (a large allocation's block of
  // its own). `p` must not be used afterwards. Used for request bodies that
  // grow as they arrive.
  char* grow(char* p, std::size_t old_size, std::size_t new_size);

  std::string_view copy(std::string_view s) {
    if (s.empty()) return {};
    auto* p = static_cast<char*>(allocate(s.size(), 1));
    std::memcpy(p, s.data(), s.size());
    return {p, s.size()};
  }

  // Constructs a T whose destructor runs at reset() (in reverse order).
  template <class T, class... Args>
  T* make(Args&&... args) {
    void* p = allocate(sizeof(T), alignof(T));
    T* obj = new (p) T(std::forward<Args>(args)...);
    if constexpr (!std::is_trivially_destructible_v<T>) {
      auto* d = static_cast<dtor_node*>(allocate(sizeof(dtor_node), alignof(dtor_node)));
      d->fn = [](void* o) { static_cast<T*>(o)->~T(); };
      d->obj = obj;
      d->next = dtors_;
      dtors_ = d;
    }
    return obj;
  }

  // Runs registered destructors and frees every block but the first.
  void reset() noexcept;

  // Bytes handed out since the last reset (for tests and the body budget).
  std::size_t bytes_used() const noexcept { return used_; }
  // Bytes held in blocks beyond the first (released by reset()).
  std::size_t extra_bytes() const noexcept { return extra_bytes_; }

 private:
  struct block_header {
    block_header* next;
    std::size_t size;
    bool sole;  // holds one large allocation only (nothing is bumped into it)
  };
  struct dtor_node {
    void (*fn)(void*);
    void* obj;
    dtor_node* next;
  };

  void* try_bump(std::size_t n, std::size_t align) noexcept {
    auto cur = reinterpret_cast<std::uintptr_t>(cur_);
    auto aligned = (cur + (align - 1)) & ~(std::uintptr_t(align) - 1);
    if (cur_ == nullptr || aligned + n > reinterpret_cast<std::uintptr_t>(end_)) return nullptr;
    last_ = reinterpret_cast<char*>(aligned);
    cur_ = last_ + n;
    used_ += n;
    return last_;
  }
  void* allocate_slow(std::size_t n, std::size_t align);
  void release_dedicated(char* p) noexcept;

  std::size_t first_size_;
  block_pool* pool_ = nullptr;
  char* first_ = nullptr;      // kept across resets
  block_header* extra_ = nullptr;  // freed by reset
  char* cur_ = nullptr;
  char* end_ = nullptr;
  char* last_ = nullptr;       // start of the most recent allocation
  dtor_node* dtors_ = nullptr;
  std::size_t used_ = 0;
  std::size_t extra_bytes_ = 0;
};

}  // namespace gateway::core
