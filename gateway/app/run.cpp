#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <pthread.h>
#include <sched.h>

#include <string>

#include "gateway/app/instance.hpp"
#include "gateway/core/memory.hpp"
#include "gateway/core/units.hpp"
#include "gateway/net/io_backend.hpp"

namespace gateway::app {

namespace {

// HOST:PORT as a URL's authority (RFC 3986 section 3.2.2): an IPv6 address
// goes in brackets, so the port after the last ':' stays the port.
std::string authority(const std::string& host, unsigned port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

int run(const core::config& cfg) {
  if (cfg.check_config) {
    std::string message;
    const bool ok = check_config(cfg, message);
    std::fprintf(ok ? stdout : stderr, "gateway: %s\n", message.c_str());
    return ok ? 0 : 1;
  }
  // Before any worker exists: a --io-backend this copy cannot serve (an
  // io_uring build where the kernel refuses io_uring, io_uring in a build
  // without it) is said at once, instead of failing later inside a worker.
  if (const std::string refused = net::io_backend_refusal(cfg.io_backend); !refused.empty()) {
    std::fprintf(stderr, "gateway: %s\n", refused.c_str());
    return 2;
  }
  // Before any thread exists, so that every thread the gateway starts
  // (workers, resolvers, store clients) inherits the policy.
  if (cfg.sched_policy == core::sched_policy_choice::batch) {
    const sched_param param{};
    if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
      const int e = errno;
      std::fprintf(stderr, "gateway: --sched-policy batch: sched_setscheduler: %s (errno %d)\n", std::strerror(e), e);
      return 2;
    }
  }
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

  std::unique_ptr<instance> gw;
  try {
    gw = std::make_unique<instance>(cfg);
  } catch (const config_error& e) {
    std::fprintf(stderr, "gateway: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gateway: %s\n", e.what());
    return 1;
  }
  gw->start();
  const auto& c = gw->cfg();
  const net::tls_terminator* tls = gw->server().tls();
  const char* scheme = tls ? "https" : "http";
  std::fprintf(stderr, "gateway: listening on %s with %u worker threads%s\n",
               authority(c.listen.host, gw->port()).c_str(), gw->server().worker_count(), tls ? " (HTTPS)" : "");
  // After the listening line, which scripts and tests read first for the port.
  std::fprintf(stderr, "gateway: I/O backend: %s\n", net::io_backend_name());
  if (c.sched_policy == core::sched_policy_choice::batch)
    std::fprintf(stderr, "gateway: scheduling policy: SCHED_BATCH (--sched-policy batch)\n");
  // With --proxy-protocol a plain request is refused; curl can send a v1 header itself.
  std::string curl_opts = c.proxy_protocol ? "--haproxy-protocol " : "";
  // curl reads brackets in a URL as a glob unless told -g (--globoff).
  if (c.listen.host.find(':') != std::string::npos) curl_opts += "-g ";
  if (tls && !tls->self_signed_fingerprint().empty()) {
    std::fprintf(stderr, "gateway: --tls self-signed: certificate for localhost, 127.0.0.1, ::1, SHA-256 fingerprint %s\n",
                 tls->self_signed_fingerprint().c_str());
    if (!tls->self_signed_pem_path().empty()) {
      std::fprintf(stderr, "gateway: --tls self-signed: certificate written to %s\n", tls->self_signed_pem_path().c_str());
      curl_opts += "--cacert " + tls->self_signed_pem_path() + " ";
    } else {
      std::fprintf(stderr, "gateway: --tls self-signed: WARNING: %s\n", tls->self_signed_warning().c_str());
      curl_opts += "-k ";
    }
  } else if (tls) {
    std::fprintf(stderr, "gateway: TLS certificates: %s\n", tls->current()->describe().c_str());
  }
  if (gw->server().redirect_port() != 0)
    std::fprintf(stderr, "gateway: --redirect-http: plain HTTP on %s answers 308 to https\n",
                 authority(c.listen.host, gw->server().redirect_port()).c_str());
  const std::string host = tls && !tls->self_signed_fingerprint().empty() ? std::string("localhost") : c.listen.host;
  const std::string origin = authority(host, gw->port());
  std::fprintf(stderr, "gateway: try  curl %s-s %s://%s/health\n", curl_opts.c_str(), scheme, origin.c_str());
  const char* curl_proxy = curl_opts.c_str();
  if (gw->demo_backend())
    std::fprintf(stderr, "gateway: no --backend given: /api/ goes to an embedded echo backend at %s\n", c.backend.c_str());
  if (!c.routes.empty()) std::fprintf(stderr, "gateway: routes:%s\n", describe_routes(c).c_str());
  if (c.upstream_insecure)
    std::fprintf(stderr,
                 "gateway: WARNING: --upstream-insecure: certificates of https:// backends are NOT verified; "
                 "for development only\n");
  // Allowed (a test may want a small budget beside the default limit), but
  // in production every body between the two gets 503 with Retry-After,
  // which no retry cures: --max-body's 413 says what is wrong.
  if (c.body_budget < c.max_body)
    std::fprintf(stderr,
                 "gateway: WARNING: --body-budget %s is smaller than --max-body %s: every body between the two gets "
                 "503, however often it is sent\n",
                 core::format_size(c.body_budget).c_str(), core::format_size(c.max_body).c_str());
  if (c.rate_limit_enabled && !c.rate_limit_store.empty() && c.rate_limit_key == "api-key" &&
      c.rate_limit_store_secret.empty())
    std::fprintf(stderr,
                 "gateway: WARNING: --rate-limit-key api-key without --rate-limit-store-secret: Redis names API keys "
                 "by their plain SHA-256, which anyone reading Redis can test guessed keys against\n");
  // A placeholder, never a configured key: this line ends up in journald and
  // container logs, and the keys are kept only as keyed digests.
  if (!c.api_keys.empty())
    std::fprintf(stderr, "gateway: and  curl %s-s -H 'X-API-Key: <your key>' %s://%s/api/hello\n", curl_proxy,
                 scheme, origin.c_str());
  else if (c.api_keys_file.empty() && c.jwt_secret.empty() && c.jwt_jwks.empty())
    std::fprintf(stderr, "gateway: no --api-key, --jwt-secret or --jwt-jwks given: /api/ and /logs will answer 401\n");
  if (auto s = gw->current_settings(); s->jwt && s->jwt->options().jwks)
    std::fprintf(stderr, "gateway: --jwt-jwks %s: %s\n", c.jwt_jwks.c_str(), s->jwt->options().jwks->describe().c_str());

  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      std::string message;
      if (gw->reload_from_sources(message))
        std::fprintf(stderr, "gateway: SIGHUP: configuration reloaded: %s\n", message.c_str());
      else
        std::fprintf(stderr, "gateway: SIGHUP: reload REFUSED, the previous configuration stays: %s\n",
                     message.c_str());
      continue;
    }
    std::fprintf(stderr, "gateway: signal %d, draining (up to %lld ms)\n", sig,
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(c.drain_timeout).count()));
    break;
  }
  gw->stop();
  gw->wait();
  auto live = gw->server().live();
  std::fprintf(stderr, "gateway: stopped (connections %lld, coroutines %lld, threads %lld)\n",
               static_cast<long long>(live.connections), static_cast<long long>(live.coroutines),
               static_cast<long long>(live.threads));
  return 0;
}

int run_from_args(int argc, char** argv) {
  core::config cfg;
  const auto outcome = core::parse_args(argc, argv, cfg);
  if (outcome.what != core::parse_outcome::action::run) {
    // main.cpp parsed the same arguments before: only a --config file that
    // changed in between can get here.
    std::fprintf(stderr, "gateway: %s\n", outcome.message.c_str());
    return 2;
  }
  return run(cfg);
}

}  // namespace gateway::app
