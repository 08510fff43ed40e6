#include "gateway/app/app.hpp"

#include <csignal>
#include <cstdio>
#include <pthread.h>

#include "gateway/admin/health.hpp"
#include "gateway/app/router.hpp"
#include "gateway/core/memory.hpp"
#include "gateway/net/server.hpp"

namespace gateway::app {

net::chain_factory make_chain_factory(const core::config& cfg) {
  (void)cfg;
  return [](net::worker_env&) -> http::handler_ptr {
    auto r = std::make_unique<router>();
    r->add_exact("/health", admin::make_health_handler());
    return r;
  };
}

int run(const core::config& cfg) {
  core::configure_process_memory();
  // Signals are taken by this thread alone, with sigwait: worker threads
  // inherit the blocked mask and never see them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<net::server> srv;
  try {
    srv = std::make_unique<net::server>(cfg, make_chain_factory(cfg));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gateway: %s\n", e.what());
    return 1;
  }
  srv->start();
  std::printf("gateway listening on %s:%u with %u worker threads\n", cfg.listen.host.c_str(),
              static_cast<unsigned>(srv->port()), srv->worker_count());
  std::printf("try: curl -s http://%s:%u/health\n", cfg.listen.host.c_str(), static_cast<unsigned>(srv->port()));
  std::fflush(stdout);

  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) continue;  // reload comes with the config file
    std::fprintf(stderr, "gateway: signal %d, draining (up to %lld ms)\n", sig,
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(cfg.drain_timeout).count()));
    break;
  }
  srv->stop();
  srv->wait();
  auto live = srv->live();
  std::fprintf(stderr, "gateway: stopped (connections %lld, coroutines %lld, threads %lld)\n",
               static_cast<long long>(live.connections), static_cast<long long>(live.coroutines),
               static_cast<long long>(live.threads));
  return 0;
}

}  // namespace gateway::app
