// The io_uring build where the kernel refuses io_uring (built only with
// GATEWAY_IO_URING=ON): the gateway binary runs under deny_io_uring, a
// seccomp filter that answers EPERM to the io_uring system calls as
// Docker's default profile does, and must stop at start-up with exit 2 and
// a message naming the refusal and the build without io_uring, never crash
// or hang.
#include <catch2/catch.hpp>

#include <csignal>
#include <string>

#include "tests/support/child_process.hpp"

using namespace std::chrono_literals;

namespace {
const std::string gateway_bin = std::string(GATEWAY_BIN_DIR) + "/gateway";
const std::string deny_bin = std::string(GATEWAY_BIN_DIR) + "/deny_io_uring";
}  // namespace

TEST_CASE("io_uring build: where seccomp refuses io_uring the gateway exits 2 at start-up, naming errno and the epoll build",
          "[integration][io_uring]") {
  gateway::test::child_process gw({deny_bin, gateway_bin, "--listen", "127.0.0.1:0", "--threads", "2"});
  const auto status = gw.wait_exit(10s);
  INFO("stderr: " << gw.err());
  REQUIRE(status);  // exited, did not hang
  CHECK(*status == 2);
  CHECK(gw.err().find("gateway: --io-backend auto: io_uring refused by the kernel: ") != std::string::npos);
  CHECK(gw.err().find("Operation not permitted") != std::string::npos);
  CHECK(gw.err().find("errno 1, EPERM") != std::string::npos);
  CHECK(gw.err().find("-DGATEWAY_IO_URING=OFF") != std::string::npos);
  CHECK(gw.err().find("listening on") == std::string::npos);
}

TEST_CASE("io_uring build: without the seccomp filter the same gateway starts, serves on its ring and stops with 0",
          "[integration][io_uring]") {
  // The control for the test above: the refusal comes from the filter, not
  // from this kernel or the flags.
  gateway::test::child_process gw({gateway_bin, "--listen", "127.0.0.1:0", "--threads", "2"});
  REQUIRE(gw.wait_for_line("listening on", true, 10s));
  gw.signal(SIGTERM);
  const auto status = gw.wait_exit(15s);
  INFO("stderr: " << gw.err());
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(gw.err().find("io_uring refused") == std::string::npos);
}

TEST_CASE("io_uring build: --io-backend epoll exits 2 at start-up: this build has io_uring only",
          "[integration][io_uring]") {
  gateway::test::child_process gw({gateway_bin, "--io-backend", "epoll", "--listen", "127.0.0.1:0"});
  const auto status = gw.wait_exit(10s);
  INFO("stderr: " << gw.err());
  REQUIRE(status);
  CHECK(*status == 2);
  CHECK(gw.err().find("gateway: --io-backend epoll: this gateway was built with GATEWAY_IO_URING=ON") != std::string::npos);
  CHECK(gw.err().find("listening on") == std::string::npos);
}

TEST_CASE("io_uring build: --version names the io_uring backend and needs no ring, even under the filter",
          "[integration][io_uring]") {
  gateway::test::child_process gw({deny_bin, gateway_bin, "--version"});
  const auto status = gw.wait_exit(10s);
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(gw.out().find("(I/O backend: io_uring)") != std::string::npos);
}
