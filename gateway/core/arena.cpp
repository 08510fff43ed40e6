#include "gateway/core/arena.hpp"

#include <algorithm>
#include <cstdint>

namespace gateway::core {

void* arena::allocate_slow(std::size_t n, std::size_t align) {
  if (first_ == nullptr) {
    first_ = pool_ != nullptr ? pool_->take() : static_cast<char*>(::operator new(first_size_));
    cur_ = first_;
    end_ = first_ + first_size_;
    if (void* p = try_bump(n, align)) return p;
  }
  // A new block big enough for this allocation; small requests share a
  // block of at least 16 KiB so a request with many headers does not reach
  // malloc once per header.
  constexpr std::size_t shared_block = 16 * 1024;
  std::size_t payload = std::max<std::size_t>(n + align, shared_block);
  std::size_t total = sizeof(block_header) + payload;
  auto* b = static_cast<block_header*>(::operator new(total));
  b->next = extra_;
  b->size = total;
  b->sole = false;
  extra_ = b;
  extra_bytes_ += total;
  if (payload > shared_block && end_ - cur_ >= 256) {
    // A large allocation (a body) gets its own block, and the current one
    // keeps serving the small ones: switching to the full block would leave
    // the rest of this one unused and send the next small allocation to
    // malloc for a fresh block.
    auto p = (reinterpret_cast<std::uintptr_t>(b + 1) + (align - 1)) & ~(std::uintptr_t(align) - 1);
    b->sole = true;
    used_ += n;
    return reinterpret_cast<void*>(p);
  }
  cur_ = reinterpret_cast<char*>(b + 1);
  end_ = reinterpret_cast<char*>(b) + total;
  void* p = try_bump(n, align);
  return p;
}

char* arena::grow(char* p, std::size_t old_size, std::size_t new_size) {
  if (new_size <= old_size) return p;
  if (p != nullptr && p == last_ && p + new_size <= end_) {
    cur_ = p + new_size;
    used_ += new_size - old_size;
    return p;
  }
  auto* q = static_cast<char*>(allocate(new_size, 1));
  if (old_size) std::memcpy(q, p, old_size);
  release_dedicated(p);
  return q;
}

// A large allocation that got a block of its own (allocate_slow) is the
// only thing in it: once grow() has copied it elsewhere, the block goes at
// once, so a body grown by doubling holds its current buffer, not every
// buffer it went through.
void arena::release_dedicated(char* p) noexcept {
  if (p == nullptr) return;
  for (block_header** link = &extra_; *link != nullptr; link = &(*link)->next) {
    block_header* b = *link;
    char* start = reinterpret_cast<char*>(b + 1);
    char* stop = reinterpret_cast<char*>(b) + b->size;
    if (p < start || p >= stop) continue;
    if (!b->sole) return;  // a shared block: other allocations live in it
    *link = b->next;
    extra_bytes_ -= b->size;
    ::operator delete(b);
    return;
  }
}

void arena::reset() noexcept {
  for (dtor_node* d = dtors_; d != nullptr; d = d->next) d->fn(d->obj);
  dtors_ = nullptr;
  while (extra_ != nullptr) {
    block_header* next = extra_->next;
    ::operator delete(extra_);
    extra_ = next;
  }
  extra_bytes_ = 0;
  used_ = 0;
  last_ = nullptr;
  cur_ = first_;
  end_ = first_ ? first_ + first_size_ : nullptr;
}

}  // namespace gateway::core
