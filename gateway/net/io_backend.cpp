#include "gateway/net/io_backend.hpp"

#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <cstring>
#include <system_error>

namespace gateway::net {

#if defined(GATEWAY_IO_URING)

const char* io_backend_name() noexcept { return "io_uring"; }

std::string io_backend_refusal() {
  try {
    asio::io_context io(1);
    // The first I/O object starts the context's io_uring service, which
    // sets up its ring (io_uring_queue_init) as every worker's will.
    asio::steady_timer probe(io);
  } catch (const std::system_error& e) {
    const int err = e.code().value();
    // Asio reports the ring's failure as an errno value in its system category.
    const bool is_errno = e.code().category() == asio::error::get_system_category();
    const char* name = is_errno ? strerrorname_np(err) : nullptr;
    std::string message = "io_uring refused by the kernel: ";
    message += e.what();
    message += " (errno " + std::to_string(err);
    if (name != nullptr) message += std::string(", ") + name;
    message +=
        "). This gateway was built with GATEWAY_IO_URING=ON and cannot run without io_uring; allow it "
        "(seccomp profile, sysctl kernel.io_uring_disabled=0, Linux 5.10 or later, as Asio asks) or use a build configured "
        "with -DGATEWAY_IO_URING=OFF (the default, epoll)";
    return message;
  }
  return {};
}

#else

const char* io_backend_name() noexcept { return "epoll"; }

std::string io_backend_refusal() { return {}; }

#endif

}  // namespace gateway::net
