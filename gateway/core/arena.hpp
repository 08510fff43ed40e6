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
// Thread: not thread-safe; used only by the connection's coroutine.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

namespace gateway::core {

class arena {
 public:
  static constexpr std::size_t default_first_block = 8 * 1024;

  explicit arena(std::size_t first_block_size = default_first_block) noexcept
      : first_size_(first_block_size) {}
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;
  ~arena() {
    reset();
    ::operator delete(first_);
  }

  // Uninitialised bytes aligned to `align`. Throws std::bad_alloc only when
  // the process is out of memory (callers above the arena cap sizes first).
  void* allocate(std::size_t n, std::size_t align = alignof(std::max_align_t)) {
    if (void* p = try_bump(n, align)) return p;
    return allocate_slow(n, align);
  }

  // Grows the most recent allocation in place when it is the last one made
  // and fits; otherwise copies it to a new allocation. Used for chunked
  // bodies, whose size is known only at the end.
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

  std::size_t first_size_;
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
