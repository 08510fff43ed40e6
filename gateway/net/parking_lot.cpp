#include "gateway/net/parking_lot.hpp"

#include <unistd.h>

#include <cstring>
#include <new>
#include <utility>

#include "gateway/net/connection.hpp"
#include "gateway/net/tls_stream.hpp"
#include "gateway/net/worker.hpp"

namespace gateway::net {

parked_connection::~parked_connection() = default;

parking_lot::~parking_lot() { shut(); }

bool parking_lot::open() noexcept {
  if (watch_) return true;
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return false;
  std::error_code ec;
  watch_ = std::make_unique<asio::posix::stream_descriptor>(io_);
  watch_->assign(epoll_fd_, ec);
  if (ec) {
    watch_.reset();
    ::close(epoll_fd_);
    epoll_fd_ = -1;
    return false;
  }
  return true;
}

parked_connection* parking_lot::take_record() {
  if (free_ == nullptr) {
    auto slab = std::make_unique<parked_connection[]>(slab_records);
    for (std::size_t i = 0; i < slab_records; ++i) {
      slab[i].next = free_;
      free_ = &slab[i];
    }
    slabs_.push_back(std::move(slab));
  }
  parked_connection* p = free_;
  free_ = p->next;
  p->prev = nullptr;
  p->next = first_;
  if (first_ != nullptr) first_->prev = p;
  first_ = p;
  ++count_;
  core::bump(owner_.counters().connections);
  core::bump(owner_.counters().parked);
  return p;
}

void parking_lot::unlink(parked_connection* p) noexcept {
  if (p->prev != nullptr) p->prev->next = p->next;
  else first_ = p->next;
  if (p->next != nullptr) p->next->prev = p->prev;
  p->prev = nullptr;
  --count_;
  core::drop(owner_.counters().connections);
  core::drop(owner_.counters().parked);
}

void parking_lot::give_back(parked_connection* p) noexcept {
  p->tls.reset();     // SSL_free: the descriptor is the socket's to close
  p->socket.reset();  // closes it, if it is still here
  if (p->client_address_len > parked_connection::inline_address_max) delete[] p->heap_address;
  p->client_address_len = 0;
  p->next = free_;
  free_ = p;
}

bool parking_lot::park(connection_state& c) {
  if (shut_ || !open()) return false;
  parked_connection* p = take_record();
  p->fresh = c.fresh;
  p->proxy_header_read = c.proxy_header_read;
  p->deadline = c.deadline;
  p->idle_since = c.idle_since;
  if (c.client_address_len <= parked_connection::inline_address_max) {
    std::memcpy(p->inline_address, c.client_address, c.client_address_len);
  } else {
    p->heap_address = new (std::nothrow) char[c.client_address_len];
    if (p->heap_address == nullptr) {
      unlink(p);
      give_back(p);
      return false;
    }
    std::memcpy(p->heap_address, c.client_address, c.client_address_len);
  }
  p->client_address_len = static_cast<std::uint8_t>(c.client_address_len);
  p->client_ip_offset = 0;
  p->client_ip_len = 0;
  if (!c.client_ip.empty()) {
    p->client_ip_offset = static_cast<std::uint8_t>(c.client_ip.data() - c.client_address);
    p->client_ip_len = static_cast<std::uint8_t>(c.client_ip.size());
  }
  // Level-triggered: bytes that came between the session's end and now
  // report at once. One-shot: the event disarms it, so resuming needs no
  // epoll_ctl, and it stays in the set (disarmed) until the socket closes.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.ptr = p;
  const int fd = c.socket.native_handle();
  const int op = c.in_parking_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  p->socket.emplace(std::move(c.socket));
  if (c.tls) {
    p->tls = std::move(c.tls);
    p->tls->rebind(*p->socket);
  }
  if (::epoll_ctl(epoll_fd_, op, fd, &ev) != 0) {
    unlink(p);
    give_back(p);
    return true;
  }
  arm();
  return true;
}

void parking_lot::arm() {
  if (armed_ || shut_) return;
  armed_ = true;
  watch_->async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
    armed_ = false;
    if (ec || shut_) return;
    take_ready();
    arm();
    // Asio watches the epoll set edge-triggered: what turned ready between
    // the first look and the new wait would not wake it, so look again.
    take_ready();
  });
}

void parking_lot::take_ready() {
  epoll_event events[events_per_call];
  // Each round takes at most events_per_call records, each event disarms its
  // descriptor, so this ends after count_ records at most.
  for (;;) {
    const int n = ::epoll_wait(epoll_fd_, events, events_per_call, 0);
    if (n <= 0) return;
    for (int i = 0; i < n; ++i) {
      auto* p = static_cast<parked_connection*>(events[i].data.ptr);
      unlink(p);
      owner_.resume(*p);  // takes the socket
      give_back(p);
    }
    if (n < events_per_call) return;
  }
}

void parking_lot::expire(std::chrono::steady_clock::time_point now) noexcept {
  for (parked_connection* p = first_; p != nullptr;) {
    parked_connection* next = p->next;
    if (p->deadline <= now) {
      unlink(p);
      give_back(p);  // closing the socket also takes it out of the epoll sets
    }
    p = next;
  }
}

void parking_lot::shut() noexcept {
  shut_ = true;
  while (first_ != nullptr) {
    parked_connection* p = first_;
    unlink(p);
    give_back(p);
  }
  if (watch_) {
    // The pending wait completes with operation_aborted; the handler only
    // clears armed_.
    std::error_code ignored;
    watch_->cancel(ignored);
  }
}

}  // namespace gateway::net
