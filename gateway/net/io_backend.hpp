#pragma once
// Which of Asio's I/O backends this copy of the library runs on, and whether
// the kernel lets the process use io_uring.
//
// Asio chooses its backend at compile time. The library is compiled on epoll
// by default and on io_uring with ASIO_HAS_IO_URING (GATEWAY_IO_URING=1):
// either the whole build (-DGATEWAY_IO_URING=ON, cmake/io_uring.cmake) or
// the second copy of the library the gateway binary carries beside the epoll
// one, every name renamed (-DGATEWAY_IO_URING_RUNTIME=ON, gateway/main.cpp
// picks the copy from --io-backend). io_uring can be refused at run time
// where epoll never is (a seccomp profile such as Docker's default, the
// sysctl kernel.io_uring_disabled, a kernel older than 5.1); Asio then
// throws from the first socket or timer, somewhere inside a worker. The
// checks here try the ring the way Asio creates it, once, at start-up, so a
// refusal is reported (or avoided) before anything else starts.
//
// Thread: any; the probe creates and destroys a private io_context.
#include <string>

#include "gateway/core/config.hpp"

namespace gateway::net {

// "io_uring" or "epoll": this copy's backend.
const char* io_backend_name() noexcept;

// In an io_uring copy: empty when the kernel lets the process set up Asio's
// ring, else what refused it, e.g. "io_uring_queue_init: Operation not
// permitted (errno 1, EPERM)". In an epoll copy: always empty (never asked).
std::string io_uring_refusal();

// Whether this copy can serve with `choice` (--io-backend): empty if so, or
// the start-up error to print before exiting 2, naming the flag. An io_uring
// copy refuses epoll and a kernel that refuses io_uring; an epoll copy
// refuses io_uring (main.cpp never hands it that choice when the binary
// has the io_uring copy). `automatic` is this copy's own backend.
std::string io_backend_refusal(core::io_backend_choice choice);

}  // namespace gateway::net
