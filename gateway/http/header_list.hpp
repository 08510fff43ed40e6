#pragma once
// An ordered list of header fields whose storage lives in a request arena.
// Order, spelling and repetition are kept exactly as received (the proxy
// forwards them so). Names compare case-insensitively (RFC 9110 section 5.1).
#include <cstdint>
#include <cstring>
#include <string_view>

#include "gateway/core/arena.hpp"
#include "gateway/core/ascii.hpp"

namespace gateway::http {

// ASCII case-insensitive equality, for header names and tokens.
inline bool iequals(std::string_view a, std::string_view b) noexcept { return core::iequals_ascii(a, b); }

struct header_field {
  std::string_view name;
  std::string_view value;
};

class header_list {
 public:
  header_list() = default;
  explicit header_list(core::arena& mem) : mem_(&mem) {}

  void add(std::string_view name, std::string_view value) {
    if (size_ == cap_) reserve(cap_ ? cap_ * 2 : 16);
    data_[size_++] = {name, value};
  }
  // First value with this name, or an empty view with found=false.
  const header_field* find(std::string_view name) const noexcept {
    for (std::uint32_t i = 0; i < size_; ++i)
      if (iequals(data_[i].name, name)) return &data_[i];
    return nullptr;
  }
  std::string_view value_of(std::string_view name) const noexcept {
    const header_field* f = find(name);
    return f ? f->value : std::string_view{};
  }
  std::size_t count(std::string_view name) const noexcept {
    std::size_t n = 0;
    for (std::uint32_t i = 0; i < size_; ++i) n += iequals(data_[i].name, name);
    return n;
  }
  // Removes every field with this name, keeping the order of the rest.
  std::size_t remove(std::string_view name) noexcept {
    return remove_if([name](const header_field& f) { return iequals(f.name, name); });
  }
  // Removes every field for which pred(field) is true, keeping the order
  // of the rest.
  template <class Pred>
  std::size_t remove_if(Pred pred) noexcept {
    std::uint32_t w = 0, received = 0;
    for (std::uint32_t r = 0; r < size_; ++r) {
      if (pred(static_cast<const header_field&>(data_[r]))) continue;
      if (r < received_) ++received;
      data_[w++] = data_[r];
    }
    std::size_t removed = size_ - w;
    size_ = w;
    received_ = received;
    return removed;
  }
  // Replaces every field with this name by one at the end: a field the
  // gateway sets is not a received one (received() is false for it).
  void set(std::string_view name, std::string_view value) {
    remove(name);
    add(name, value);
  }
  void clear() noexcept { size_ = received_ = 0; }
  // Keeps the first n fields (those added since are dropped).
  void truncate(std::size_t n) noexcept {
    if (n < size_) size_ = static_cast<std::uint32_t>(n);
    if (received_ > size_) received_ = size_;
  }
  // Marks the fields so far as the ones received from the peer (the parser
  // calls it at the end of a head); fields added afterwards are not, and
  // removals keep the mark on the received fields that stay.
  void mark_received() noexcept { received_ = size_; }
  // True for a field of this list that came with the received head.
  bool received(const header_field& f) const noexcept { return &f >= data_ && &f < data_ + received_; }

  const header_field* begin() const noexcept { return data_; }
  const header_field* end() const noexcept { return data_ + size_; }
  header_field* begin() noexcept { return data_; }
  header_field* end() noexcept { return data_ + size_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  core::arena& memory() const noexcept { return *mem_; }

 private:
  void reserve(std::uint32_t n) {
    auto* p = static_cast<header_field*>(mem_->allocate(sizeof(header_field) * n, alignof(header_field)));
    if (size_) std::memcpy(static_cast<void*>(p), data_, sizeof(header_field) * size_);
    data_ = p;
    cap_ = n;
  }

  core::arena* mem_ = nullptr;
  header_field* data_ = nullptr;
  std::uint32_t size_ = 0;
  std::uint32_t cap_ = 0;
  std::uint32_t received_ = 0;  // the first received_ fields came with the head
};

}  // namespace gateway::http
