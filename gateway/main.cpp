// The gateway binary: parse flags, run. Everything else lives in the library.
#include <cstdio>

#include "gateway/app/instance.hpp"
#include "gateway/core/config.hpp"
#include "gateway/net/io_backend.hpp"
#include "gateway/net/tls_buffer_cache.hpp"

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
      std::printf("gateway %s (I/O backend: %s)\n", GATEWAY_VERSION, gateway::net::io_backend_name());
      return 0;
    case gateway::core::parse_outcome::action::error:
      std::fprintf(stderr, "gateway: %s\n", outcome.message.c_str());
      return 2;
    case gateway::core::parse_outcome::action::run:
      break;
  }
  return gateway::app::run(cfg);
}
