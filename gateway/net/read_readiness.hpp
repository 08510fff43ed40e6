#pragma once
// Skipping the read that would find nothing (nginx's "not ready" flag).
//
// Asio's epoll reactor tries every read on a socket at once (a speculative
// recv) and only waits for epoll when that returns EAGAIN. On a keep-alive
// connection the next read after a response, and the upstream read after a
// forwarded request, almost always find nothing yet, so each request paid
// about one empty recvfrom per side. After a read that returned fewer bytes
// than it asked for, the kernel's receive queue was empty at that moment;
// mark_read_drained() tells the reactor so, and the next read on the socket
// goes straight to the epoll wait without a system call (and without an
// epoll_ctl: the socket stays registered, edge-triggered, for input). The
// reactor clears the mark itself when epoll reports the socket readable, so
// bytes that arrive after the short read are never missed.
//
// Call it only from the completion of a read on `s` (in the coroutine that
// awaited it, before anything else runs on the socket's io_context), and
// only on an io_context run by one thread (each worker's). Why that is safe:
// the read's completion runs before any epoll_wait that follows the read, and
// an epoll event for data that arrived after the read is handled after the
// completion and clears the mark again.
//
// A no-op when Asio's backend is not the epoll reactor (io_uring).
#include <asio/ip/tcp.hpp>
#include <cstddef>

namespace gateway::net {

// Whether mark_read_drained() does anything in this build (Asio's epoll
// reactor); with another backend every read is tried at once as before.
#if defined(ASIO_HAS_EPOLL) && !defined(ASIO_HAS_IO_URING_AS_DEFAULT)
inline constexpr bool read_marks_supported = true;
#else
inline constexpr bool read_marks_supported = false;
#endif

void mark_read_drained(asio::ip::tcp::socket& s) noexcept;

// After a read of `asked` bytes that returned `got`: a short read (not end of
// stream, which the reactor already marks) means the socket was drained.
inline void note_read(asio::ip::tcp::socket& s, std::size_t got, std::size_t asked) noexcept {
  if (got > 0 && got < asked) mark_read_drained(s);
}

}  // namespace gateway::net
