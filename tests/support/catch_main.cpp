#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "gateway/net/tls_buffer_cache.hpp"

int main(int argc, char* argv[]) {
  // As the gateway binary does, before anything makes OpenSSL allocate:
  // the in-process gateway's TLS then runs on the same allocator.
  gateway::net::install_tls_buffer_cache();
  return Catch::Session().run(argc, argv);
}
