// The lines the gateway binary prints on stderr at start-up (app/run.cpp):
// what they reveal, and that the curl commands they suggest work as printed.
// The binary runs as a child process on loopback, port 0.
#include <catch2/catch.hpp>

#include <csignal>
#include <string>

#include "tests/support/child_process.hpp"

using namespace std::chrono_literals;

namespace {

const std::string gateway_bin = std::string(GATEWAY_BIN_DIR) + "/gateway";

// SIGTERM and a clean exit, so each case leaves nothing running.
void stop(gateway::test::child_process& gw) {
  gw.signal(SIGTERM);
  const auto status = gw.wait_exit(15s);
  INFO("stderr: " << gw.err());
  REQUIRE(status);
  CHECK(*status == 0);
}

}  // namespace

TEST_CASE("start-up lines: the API-key curl hint shows a placeholder, never a configured key",
          "[integration][startup]") {
  const std::string key = "k1-secret-7f3a9c";
  gateway::test::child_process gw({gateway_bin, "--listen", "127.0.0.1:0", "--threads", "1", "--api-key", key,
                                   "--api-key", "second-key-b42e", "--access-log", "off"});
  const auto hint = gw.wait_for_line("gateway: and  curl", true, 10s);
  INFO("stderr: " << gw.err());
  REQUIRE(hint);
  CHECK(hint->find("-H 'X-API-Key: <your key>'") != std::string::npos);
  stop(gw);
  // Stderr ends up in journald and container logs: no configured key in it.
  CHECK(gw.err().find(key) == std::string::npos);
  CHECK(gw.err().find("second-key-b42e") == std::string::npos);
}
