#pragma once
// A write tried at once, before Asio's asynchronous write, on the epoll
// backend.
//
// On epoll, Asio's async_write already tries the send at once (a
// "speculative" send), but even when the kernel takes every byte it still
// builds a composed write operation, locks the socket's reactor state, and
// posts the completion through the scheduler's queue (two more locks), so
// the coroutine resumes one scheduler pass later: about 1,700 instructions
// per write under callgrind for what is one sendmsg. send_now() makes that
// one sendmsg (MSG_DONTWAIT, MSG_NOSIGNAL, as Asio's own send) and returns
// what the kernel took; the caller awaits Asio's write only for the rest.
// A send that would block or fails returns 0 and changes nothing: the
// asynchronous write that follows meets the same condition and reports it.
//
// On the io_uring backend (ASIO_HAS_IO_URING) it does nothing and returns 0:
// there the write is a submission-queue entry that the worker's next
// io_uring_enter carries with its other work, and a sendmsg of its own
// would add a system call per write.
//
// Any thread that owns the socket's operations; no allocation, no exception.
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <asio/buffer.hpp>
#include <cstddef>
#include <span>

namespace gateway::net {

#if defined(ASIO_HAS_IO_URING)
inline constexpr bool sends_now = false;
#else
inline constexpr bool sends_now = true;
#endif

// At most `max_pieces` non-empty pieces per call; a longer list returns 0
// (the asynchronous write takes it whole).
inline std::size_t send_now(int fd, std::span<const asio::const_buffer> bufs) noexcept {
  if constexpr (!sends_now) {
    (void)fd;
    (void)bufs;
    return 0;
  } else {
    constexpr std::size_t max_pieces = 8;
    iovec iov[max_pieces];
    std::size_t n = 0;
    for (const auto& b : bufs) {
      if (b.size() == 0) continue;
      if (n == max_pieces) return 0;
      iov[n].iov_base = const_cast<void*>(b.data());
      iov[n].iov_len = b.size();
      ++n;
    }
    if (n == 0) return 0;
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = n;
    const ssize_t r = ::sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    return r > 0 ? static_cast<std::size_t>(r) : 0;
  }
}

// Advances `bufs` past their first `n` bytes (what send_now() wrote).
inline void drop_front(std::span<asio::const_buffer> bufs, std::size_t n) noexcept {
  for (auto& b : bufs) {
    const std::size_t k = std::min(n, b.size());
    b += k;
    n -= k;
  }
}

}  // namespace gateway::net
