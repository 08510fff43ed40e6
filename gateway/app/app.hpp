#pragma once
// Assembly: turns a config into the per-worker chain (routes and
// middleware) and runs the server until a signal stops it.
#include "gateway/core/config.hpp"
#include "gateway/net/worker.hpp"

namespace gateway::app {

// The chain every worker runs, built once per worker at start-up.
net::chain_factory make_chain_factory(const core::config& cfg);

// Runs the gateway until SIGINT/SIGTERM; returns the process exit code.
int run(const core::config& cfg);

}  // namespace gateway::app
