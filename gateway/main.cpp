// The gateway binary: parse flags, run. Everything else lives in the library.
#include <cstdio>

#include "gateway/app/instance.hpp"
#include "gateway/core/config.hpp"

int main(int argc, char** argv) {
  gateway::core::config cfg;
  auto outcome = gateway::core::parse_args(argc, argv, cfg);
  switch (outcome.what) {
    case gateway::core::parse_outcome::action::help:
      std::fputs(gateway::core::help_text().c_str(), stdout);
      return 0;
    case gateway::core::parse_outcome::action::version:
      std::printf("gateway %s\n", GATEWAY_VERSION);
      return 0;
    case gateway::core::parse_outcome::action::error:
      std::fprintf(stderr, "gateway: %s\n", outcome.message.c_str());
      return 2;
    case gateway::core::parse_outcome::action::run:
      break;
  }
  return gateway::app::run(cfg);
}
