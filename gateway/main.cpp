// The gateway binary: parse flags, pick the I/O backend, run. Everything
// else lives in the library.
//
// With GATEWAY_IO_URING_RUNTIME (gateway/CMakeLists.txt) the binary holds
// the library twice: `gateway` on Asio's epoll reactor and `gateway_uring`,
// the same sources compiled with ASIO_HAS_IO_URING and every Asio and
// gateway name renamed (asio -> asio_uring, gateway -> gateway_uring), so
// the two never share a symbol. --io-backend picks the copy that runs;
// the other one's code is never entered.
#include <cstdio>
#include <string>

#include "gateway/app/instance.hpp"
#include "gateway/core/config.hpp"
#include "gateway/net/io_backend.hpp"
#include "gateway/net/tls_buffer_cache.hpp"

#if defined(GATEWAY_IO_URING_RUNTIME)
// The io_uring copy's entry points: the declarations of
// gateway/app/instance.hpp and gateway/net/io_backend.hpp under the copy's
// namespace (those headers, included once here, name the epoll copy).
namespace gateway_uring::app {
int run_from_args(int argc, char** argv);
}
namespace gateway_uring::net {
std::string io_uring_refusal();
}
#endif

int main(int argc, char** argv) {
  // Before anything makes OpenSSL allocate (it refuses the switch after).
  gateway::net::install_tls_buffer_cache();
  gateway::core::config cfg;
  auto outcome = gateway::core::parse_args(argc, argv, cfg);
  switch (outcome.what) {
    case gateway::core::parse_outcome::action::help:
      std::fputs(gateway::core::help_text().c_str(), stdout);
      return 0;
    case gateway::core::parse_outcome::action::version:
#if defined(GATEWAY_IO_URING_RUNTIME)
      std::printf("gateway %s (I/O backends: epoll, io_uring; --io-backend auto takes io_uring where the kernel allows it)\n",
                  GATEWAY_VERSION);
#else
      std::printf("gateway %s (I/O backend: %s)\n", GATEWAY_VERSION, gateway::net::io_backend_name());
#endif
      return 0;
    case gateway::core::parse_outcome::action::error:
      std::fprintf(stderr, "gateway: %s\n", outcome.message.c_str());
      return 2;
    case gateway::core::parse_outcome::action::run:
      break;
  }
#if defined(GATEWAY_IO_URING_RUNTIME)
  using choice = gateway::core::io_backend_choice;
  if (cfg.check_config && cfg.io_backend == choice::io_uring) {
    // --check-config refuses what a start refuses (below: exit 2), with its own exit code 1.
    if (const std::string refused = gateway_uring::net::io_uring_refusal(); !refused.empty()) {
      std::fprintf(stderr, "gateway: --io-backend io_uring: io_uring refused by the kernel: %s\n", refused.c_str());
      return 1;
    }
  }
  if (!cfg.check_config && cfg.io_backend != choice::epoll) {
    // The probe sets up a ring as Asio's io_uring service does (same size,
    // same flags), so a kernel that accepts it accepts the workers' rings.
    const std::string refused = gateway_uring::net::io_uring_refusal();
    if (refused.empty()) return gateway_uring::app::run_from_args(argc, argv);
    if (cfg.io_backend == choice::io_uring) {
      std::fprintf(stderr,
                   "gateway: --io-backend io_uring: io_uring refused by the kernel: %s; allow it (seccomp profile, "
                   "sysctl kernel.io_uring_disabled=0, Linux 5.10 or later) or use --io-backend auto or epoll\n",
                   refused.c_str());
      return 2;
    }
    std::fprintf(stderr, "gateway: --io-backend auto: io_uring refused by the kernel: %s; using epoll\n",
                 refused.c_str());
  }
#endif
  return gateway::app::run(cfg);
}
