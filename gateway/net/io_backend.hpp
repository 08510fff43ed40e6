#pragma once
// Which of Asio's I/O backends this build uses, and whether the kernel lets
// the process use it.
//
// Asio chooses its backend at compile time: epoll by default, io_uring when
// built with GATEWAY_IO_URING=ON (cmake/io_uring.cmake). io_uring can be
// refused at run time where epoll never is (a seccomp profile such as
// Docker's default, the sysctl kernel.io_uring_disabled, a kernel older than
// 5.1); Asio then throws from the first socket or timer, somewhere inside a
// worker. io_backend_refusal() tries the ring the way Asio creates it, once,
// at start-up, so the refusal is reported before anything else starts.
//
// Thread: any; it creates and destroys a private io_context.
#include <string>

namespace gateway::net {

// "io_uring" or "epoll".
const char* io_backend_name() noexcept;

// Empty when the backend is usable; otherwise a message naming the refusal
// (the call and its errno) and the build to use instead.
std::string io_backend_refusal();

}  // namespace gateway::net
