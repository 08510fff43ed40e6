#include "gateway/net/io_backend.hpp"

#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <cstring>
#include <system_error>

namespace gateway::net {

#if defined(GATEWAY_IO_URING)

const char* io_backend_name() noexcept { return "io_uring"; }

std::string io_uring_refusal() {
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
    std::string message = e.what();
    message += " (errno " + std::to_string(err);
    if (name != nullptr) message += std::string(", ") + name;
    message += ")";
    return message;
  }
  return {};
}

std::string io_backend_refusal(core::io_backend_choice choice) {
  // The messages are the io_uring-only build's: in a binary with both
  // copies, main.cpp hands this one only auto or io_uring, once the kernel
  // has accepted the ring.
  constexpr const char* without =
      "use a build configured with -DGATEWAY_IO_URING=OFF (the default: epoll, and io_uring chosen at run time)";
  if (choice == core::io_backend_choice::epoll)
    return std::string("--io-backend epoll: this gateway was built with GATEWAY_IO_URING=ON and has io_uring only; ") +
           without;
  if (std::string refused = io_uring_refusal(); !refused.empty()) {
    return "--io-backend " + std::string(core::to_string(choice)) + ": io_uring refused by the kernel: " + refused +
           ". This gateway was built with GATEWAY_IO_URING=ON and cannot run without io_uring; allow it (seccomp "
           "profile, sysctl kernel.io_uring_disabled=0, Linux 5.10 or later, as Asio asks) or " +
           without;
  }
  return {};
}

#else

const char* io_backend_name() noexcept { return "epoll"; }

std::string io_uring_refusal() { return {}; }

std::string io_backend_refusal(core::io_backend_choice choice) {
  if (choice == core::io_backend_choice::io_uring)
    return "--io-backend io_uring: this gateway was built without io_uring (GATEWAY_IO_URING_RUNTIME=OFF: "
           "a sanitizer or non-Release build, or no liburing-dev); use --io-backend auto or epoll";
  return {};
}

#endif

}  // namespace gateway::net
