#pragma once
// Test support: a real redis-server (Debian's redis-server package) as a
// child process on a loopback port, with nothing saved to disk. start()
// waits until it accepts connections; kill() stops it by PID (SIGKILL);
// restart() starts a new one on the same port. The test thread owns it.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "tests/support/child_process.hpp"
#include "tests/support/test_server.hpp"

namespace gateway::test {

class redis_server {
 public:
  static constexpr const char* path = "/usr/bin/redis-server";
  static bool available() { return ::access(path, X_OK) == 0; }

  // Starts on a free port (a few tries, in case another process takes the
  // port first). False when it never got ready.
  bool start() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_loopback_port();
      if (port_ != 0 && restart()) return true;
    }
    return false;
  }
  // Starts again on the same port (after kill()).
  bool restart() {
    proc_ = std::make_unique<child_process>(std::vector<std::string>{
        path, "--bind", "127.0.0.1", "--port", std::to_string(port_), "--save", "", "--appendonly", "no",
        "--protected-mode", "no", "--loglevel", "notice"});
    return proc_->wait_for_line("Ready to accept connections", false, std::chrono::seconds(10)).has_value();
  }
  void kill() {
    if (!proc_) return;
    proc_->signal(SIGKILL);
    proc_->wait_exit(std::chrono::seconds(10));
  }
  void signal(int sig) {
    if (proc_) proc_->signal(sig);
  }
  std::uint16_t port() const noexcept { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  std::string output() const { return proc_ ? proc_->out() + proc_->err() : std::string(); }

 private:
  std::uint16_t port_ = 0;
  std::unique_ptr<child_process> proc_;
};

}  // namespace gateway::test
