#pragma once
// Skipping the read that would find nothing (nginx's "not ready" flag).
//
// Asio's epoll reactor tries every read on a socket at once (a speculative
// recv) and only waits for epoll when that returns EAGAIN. On a keep-alive
// client connection the read of the next request, started as soon as the
// response is written, almost always finds nothing yet: one empty recvfrom
// per request. After a read that returned fewer bytes
// than it asked for, the kernel's receive queue was empty at that moment;
// mark_read_drained() tells the reactor so, and the next read on the socket
// goes straight to the epoll wait without a system call (and without an
// epoll_ctl: the socket stays registered, edge-triggered, for input). The
// reactor clears the mark itself when epoll reports the socket readable, so
// bytes that arrive after the short read are never missed.
//
// Call it only from the completion of a read on `s` (in the coroutine that
// awaited it, with nothing awaited since), and only on an io_context run by
// one thread (each worker's). Why that is safe: the read's completion runs
// before any epoll_wait that follows the read, and an epoll event for data
// that arrived after the read is handled after the completion and clears the
// mark again.
//
// What a short read does not say: whether the peer's FIN came with the data.
// Its edge is then spent, so a marked socket at end of stream waits for an
// event that never comes. So the mark is set only where that wait is
// harmless: on a client connection after a complete request, whose next read
// is the next request, after the response (a client that half-closed right
// after its request is then closed by the idle sweep, about a second later,
// instead of by that read). Not on upstream connections: a backend that
// closes a keep-alive connection after its response, gracefully (shutdown,
// then reading what comes), would leave the next request's read waiting for
// the response timeout instead of seeing end of stream and retrying at once.
//
// A no-op when Asio's backend is not the epoll reactor (io_uring).
#include <asio/ip/tcp.hpp>

namespace gateway::net {

// Whether mark_read_drained() does anything in this build (Asio's epoll
// reactor); with another backend every read is tried at once as before.
#if defined(ASIO_HAS_EPOLL) && !defined(ASIO_HAS_IO_URING_AS_DEFAULT)
inline constexpr bool read_marks_supported = true;
#else
inline constexpr bool read_marks_supported = false;
#endif

void mark_read_drained(asio::ip::tcp::socket& s) noexcept;


}  // namespace gateway::net
