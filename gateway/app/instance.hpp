#pragma once
// One gateway: the state every worker's pipeline shares, the server, and
// reloading. run() is the process around it (signals, messages, exit code).
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gateway/app/pipeline.hpp"
#include "gateway/app/settings.hpp"
#include "gateway/core/config.hpp"
#include "gateway/net/server.hpp"
#include "gateway/proxy/demo_backend.hpp"

namespace gateway::app {

class instance {
 public:
  // Validates the config further (key files, addresses) and binds; throws
  // std::exception with a message naming the problem. Nothing runs yet.
  explicit instance(core::config cfg, std::FILE* access_log_out = stdout);
  // For tests: `adjust` sees every pipeline built (at start and on reload)
  // before it runs, e.g. to wrap it in a layer that misbehaves on cue.
  using pipeline_hook = std::function<void(http::pipeline&)>;
  instance(core::config cfg, std::FILE* access_log_out, pipeline_hook adjust_for_test);
  ~instance();
  instance(const instance&) = delete;
  instance& operator=(const instance&) = delete;

  void start();
  void stop() noexcept;
  void wait();
  std::uint16_t port() const noexcept { return server_->port(); }
  net::server& server() noexcept { return *server_; }
  shared_state& state() noexcept { return *state_; }
  const core::config& cfg() const noexcept { return cfg_; }  // as started
  bool demo_backend() const noexcept { return demo_ != nullptr; }

  // Applies new settings to the running gateway (what SIGHUP does after
  // reading the file). Refused, with `message` saying why and nothing
  // changed, when a setting needs a restart or the settings cannot be
  // built (a bad key file, an unresolvable backend). On success returns
  // once every running worker has the new pipeline. Any thread but a
  // worker's; one reload at a time.
  bool reload(core::config next, std::string& message);
  // Re-reads the --config file (if any) and re-applies the command line
  // over it, which re-reads the files flags name (--api-keys-file,
  // --jwt-jwks).
  bool reload_from_sources(std::string& message);
  std::uint64_t reloads() const noexcept;
  std::shared_ptr<const settings> current_settings() const;

 private:
  void register_metrics();
  net::chain_factory pipeline_factory(std::shared_ptr<const settings> s);

  core::config cfg_;
  pipeline_hook adjust_for_test_;
  std::unique_ptr<proxy::demo_backend> demo_;  // when no --backend is given
  std::unique_ptr<shared_state> state_;
  std::unique_ptr<net::server> server_;
  std::vector<net::worker*> workers_;  // filled by the start-up pipeline factory
  mutable std::mutex reload_mu_;       // one reload at a time; guards settings_, reloads_
  std::shared_ptr<const settings> settings_;
  std::uint64_t reloads_ = 0;
};

// Runs the gateway until SIGINT/SIGTERM (SIGHUP reloads the --config file);
// with cfg.check_config, only checks. Returns the process exit code.
int run(const core::config& cfg);

// Parses argv into a config and runs it (exit 2 on a flag error): how
// gateway/main.cpp starts the io_uring copy of the library, whose config
// type is its own.
int run_from_args(int argc, char** argv);

}  // namespace gateway::app
