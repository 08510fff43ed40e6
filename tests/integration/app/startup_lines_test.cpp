// The lines the gateway binary prints on stderr at start-up (app/run.cpp):
// what they reveal, and that the curl commands they suggest work as printed.
// The binary runs as a child process on loopback, port 0.
#include <catch2/catch.hpp>

#include <sched.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/child_process.hpp"
#include "tests/support/files.hpp"
#include "tests/support/skip.hpp"

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

TEST_CASE("start-up lines: an IPv6 listener is printed in brackets and the printed curl command reaches it",
          "[integration][startup]") {
  const std::string curl = gateway::test::find_program("curl");
  GATEWAY_REQUIRE_AVAILABLE(!curl.empty(), "curl is needed (scripts/deps.sh)");
  gateway::test::child_process gw(
      {gateway_bin, "--listen", "[::1]:0", "--threads", "1", "--api-key", "k6", "--access-log", "off"});
  const auto listening = gw.wait_for_line("gateway: listening on", true, 10s);
  const auto hint = gw.wait_for_line("gateway: try  curl", true, 10s);
  const auto key_hint = gw.wait_for_line("gateway: and  curl", true, 10s);
  INFO("stderr: " << gw.err());
  REQUIRE(listening);
  REQUIRE(hint);
  REQUIRE(key_hint);
  // The port is what follows the last ':' (tests and loadtest/compare.sh read it so).
  const unsigned port = gateway::test::port_after_listening_on(*listening);
  REQUIRE(port != 0);
  const std::string origin = "[::1]:" + std::to_string(port);
  CHECK(listening->find("gateway: listening on " + origin + " with ") != std::string::npos);
  CHECK(hint->find("curl -g -s http://" + origin + "/health") != std::string::npos);
  CHECK(key_hint->find("curl -g -s -H 'X-API-Key: <your key>' http://" + origin + "/api/hello") != std::string::npos);

  // Run the suggested command word for word (no word in it is quoted).
  std::vector<std::string> argv{curl, "--max-time", "10"};
  std::istringstream words(hint->substr(hint->find("curl ") + 5));
  for (std::string w; words >> w;) argv.push_back(w);
  gateway::test::child_process c(argv);
  const auto rc = c.wait_exit(15s);
  INFO("curl stdout: " << c.out() << " stderr: " << c.err());
  REQUIRE(rc);
  CHECK(*rc == 0);
  CHECK(c.out().find("\"status\":\"healthy\"") != std::string::npos);
  stop(gw);
}

namespace {

// The scheduling policy (field 41 of /proc/PID/task/TID/stat: 0 SCHED_OTHER,
// 3 SCHED_BATCH) of every thread of `pid`.
std::vector<int> thread_policies(pid_t pid) {
  std::vector<int> out;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& t : std::filesystem::directory_iterator(tasks)) {
    std::ifstream in(t.path() / "stat");
    std::string line;
    std::getline(in, line);
    // The name in field 2 may hold spaces and parentheses: count from its last ')'.
    std::istringstream rest(line.substr(line.rfind(')') + 1));
    std::string field;
    for (int i = 3; i <= 41; ++i) rest >> field;  // fields 3 to 41
    out.push_back(std::stoi(field));
  }
  return out;
}

}  // namespace

TEST_CASE("start-up lines: --sched-policy batch runs every thread under SCHED_BATCH and says so, the default does not",
          "[integration][startup]") {
  for (const bool batch : {true, false}) {
    std::vector<std::string> argv{gateway_bin, "--listen", "127.0.0.1:0",  "--threads", "2",
                                  "--api-key", "k",        "--access-log", "off"};
    if (batch) argv.insert(argv.end(), {"--sched-policy", "batch"});
    gateway::test::child_process gw(argv);
    const auto listening = gw.wait_for_line("gateway: listening on", true, 10s);
    const auto last = gw.wait_for_line("gateway: and  curl", true, 10s);
    INFO("batch " << batch << ", stderr: " << gw.err());
    REQUIRE(listening);
    REQUIRE(last);
    const auto policies = thread_policies(gw.pid());
    CHECK(policies.size() >= 3);  // this thread and two workers
    for (const int p : policies) CHECK(p == (batch ? SCHED_BATCH : SCHED_OTHER));
    CHECK((gw.err().find("gateway: scheduling policy: SCHED_BATCH (--sched-policy batch)\n") != std::string::npos) ==
          batch);
    stop(gw);
  }
}
