// The gateway binary with both I/O backends (GATEWAY_IO_URING_RUNTIME, the
// Release default): --io-backend picks Asio's epoll reactor or its io_uring
// backend at start-up. Each backend serves a proxied request; where a
// seccomp filter refuses io_uring (tests/support/deny_io_uring.cpp, as
// Docker's default profile does), auto falls back to epoll and says so,
// and an explicit io_uring stops at start-up with exit 2, naming the flag
// and the errno.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/cpu_pin.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

const std::string gateway_bin = std::string(GATEWAY_BIN_DIR) + "/gateway";
const std::string deny_bin = std::string(GATEWAY_BIN_DIR) + "/deny_io_uring";

// Starts `argv` (the gateway, or a launcher and the gateway, with flags)
// before a recording backend, proxies `n` requests one after another over
// one keep-alive client connection, stops it with SIGTERM, checks exit 0
// and returns its stderr.
std::string serve_proxied_requests(std::vector<std::string> argv, const std::vector<std::string>& env = {}, int n = 1) {
  test::recording_backend backend;
  backend.set_script([](const test::recorded_request&) { return test::reply{test::ok_response("from the backend")}; });
  argv.insert(argv.end(), {"--listen", "127.0.0.1:0", "--threads", "2", "--backend", backend.url(), "--api-key", "k"});
  test::child_process gw(argv, env);
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  INFO("stderr: " << gw.err());
  REQUIRE(listening);
  const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  REQUIRE(port != 0);
  {
    test::raw_client c(port, 5000ms);
    for (int i = 0; i < n; ++i) {
      REQUIRE(c.send(test::make_request("GET", "/api/through", {}, "X-API-Key: k\r\n")));
      const auto r = c.read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->body == "from the backend");
    }
  }
  const auto got = backend.requests();
  REQUIRE(got.size() == static_cast<std::size_t>(n));
  for (const auto& rq : got) CHECK(rq.target == "/through");
  gw.signal(SIGTERM);
  const auto status = gw.wait_exit(15s);
  REQUIRE(status);
  CHECK(*status == 0);
  return gw.err();
}

}  // namespace

TEST_CASE("io backend: --io-backend epoll serves a proxied request on epoll", "[integration][io_uring]") {
  const std::string err = serve_proxied_requests({gateway_bin, "--io-backend", "epoll"});
  CHECK(err.find("gateway: I/O backend: epoll\n") != std::string::npos);
  CHECK(err.find("io_uring refused") == std::string::npos);
}

TEST_CASE("io backend: --io-backend io_uring serves a proxied request on io_uring", "[integration][io_uring]") {
  const std::string err = serve_proxied_requests({gateway_bin, "--io-backend", "io_uring"});
  CHECK(err.find("gateway: I/O backend: io_uring\n") != std::string::npos);
}

TEST_CASE("io backend: on io_uring a burst of connections from one CPU is shared by both workers and all answered",
          "[integration][io_uring]") {
  // The burst lands on the listener of the client's CPU (net/accept_steering.hpp);
  // the worker that accepts it hands the descriptors beyond its share to the
  // other worker's ring (net/worker.cpp, place()).
  test::recording_backend backend;
  backend.set_script([](const test::recorded_request&) { return test::reply{test::ok_response("from the backend")}; });
  test::child_process gw({gateway_bin, "--io-backend", "io_uring", "--listen", "127.0.0.1:0", "--threads", "2",
                          "--backend", backend.url(), "--api-key", "k", "--rate-limit", "100000/min"});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  INFO("stderr: " << gw.err());
  REQUIRE(listening);
  const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  {
    const std::vector<int> cpus = test::allowed_cpus();
    REQUIRE(!cpus.empty());
    const test::pinned on(cpus.front());
    REQUIRE(on.ok());
    std::vector<std::unique_ptr<test::raw_client>> held;
    for (int i = 0; i < 64; ++i) held.push_back(std::make_unique<test::raw_client>(port, 5000ms));
    // One request at a time: a worker that serves any of them keeps one
    // upstream connection for all of its share.
    for (auto& c : held) {
      REQUIRE(c->send(test::make_request("GET", "/api/through", {}, "X-API-Key: k\r\n")));
      const auto r = c->read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->body == "from the backend");
    }
  }
  CHECK(backend.requests().size() == 64);
  CHECK(backend.connections_accepted() == 2);
  gw.signal(SIGTERM);
  const auto status = gw.wait_exit(15s);
  REQUIRE(status);
  CHECK(*status == 0);
}

namespace {

// How many times `line` occurs in `text`.
std::size_t occurrences(const std::string& text, const std::string& line) {
  std::size_t n = 0;
  for (auto at = text.find(line); at != std::string::npos; at = text.find(line, at + 1)) ++n;
  return n;
}

const std::string shim = std::string("LD_PRELOAD=") + GATEWAY_URING_FLAGS_SHIM;

}  // namespace

TEST_CASE("io backend: every io_uring ring is set up with COOP_TASKRUN and TASKRUN_FLAG where the kernel has them",
          "[integration][io_uring]") {
  // The shim only logs here: the probe and each worker (--threads 2) ask
  // for 0x300 and get their ring at the first attempt.
  const std::string err = serve_proxied_requests({gateway_bin, "--io-backend", "io_uring"}, {shim});
  INFO("stderr: " << err);
  CHECK(err.find("gateway: I/O backend: io_uring\n") != std::string::npos);
  CHECK(occurrences(err, "uring_flags_shim: io_uring_queue_init flags 0x300 -> 0\n") >= 3);
  CHECK(occurrences(err, "uring_flags_shim: io_uring_queue_init flags") ==
        occurrences(err, "uring_flags_shim: io_uring_queue_init flags 0x300 -> 0\n"));
}

TEST_CASE("io backend: where the kernel refuses the newer io_uring setup flags, the rings are set up without them and serve",
          "[integration][io_uring]") {
  // The shim answers a flag newer than Linux 5.10's with EINVAL, as such a
  // kernel's io_uring_setup does: the probe and each worker are refused
  // with 0x300 and set up their ring again with Asio's flags (0) alone.
  const std::string err =
      serve_proxied_requests({gateway_bin, "--io-backend", "io_uring"}, {shim, "URING_FLAGS_SHIM_ACCEPT=0x7f"});
  INFO("stderr: " << err);
  CHECK(err.find("gateway: I/O backend: io_uring\n") != std::string::npos);
  const std::size_t refused = occurrences(err, "uring_flags_shim: io_uring_queue_init flags 0x300 -> -22\n");
  CHECK(refused >= 3);
  CHECK(occurrences(err, "uring_flags_shim: io_uring_queue_init flags 0x0 -> 0\n") == refused);
}

namespace {

// The shim's count of the socket operations the gateway submitted.
struct submitted {
  unsigned long recvmsg = 0, recv = 0, poll_first = 0, sendmsg = 0, send = 0;
};

std::optional<submitted> submitted_counts(const std::string& err) {
  const auto at = err.find("uring_flags_shim: submitted ");
  if (at == std::string::npos) return std::nullopt;
  submitted s;
  if (std::sscanf(err.c_str() + at, "uring_flags_shim: submitted recvmsg %lu recv %lu poll_first %lu sendmsg %lu send %lu",
                  &s.recvmsg, &s.recv, &s.poll_first, &s.sendmsg, &s.send) != 5)
    return std::nullopt;
  return s;
}

}  // namespace

TEST_CASE(
    "io backend: io_uring receives into one buffer go out as RECV, small responses as one SEND, and the replies' "
    "receives poll first",
    "[integration][io_uring]") {
  // Three requests over one keep-alive connection. Every receive is into
  // one buffer, so none is a RECVMSG. The receives marked as expecting no
  // data: on the backend connection, the first response's (sent after the
  // request on a fresh connection) and the watch the pool starts each time
  // the connection goes back idle (3), which the next request's response
  // then arrives on; and the client's next request after each response
  // (after the first two responses surely, after the third unless the
  // drain comes first): 6 or 7. The client's first request and whatever
  // else is read are not marked.
  const std::string err = serve_proxied_requests({gateway_bin, "--io-backend", "io_uring"}, {shim}, 3);
  INFO("stderr: " << err);
  const auto s = submitted_counts(err);
  REQUIRE(s);
  CHECK(s->recvmsg == 0);
  CHECK(s->poll_first >= 6);
  CHECK(s->poll_first <= 7);
  CHECK(s->recv > s->poll_first);
  // The requests to the backend (a head and an empty body) are single
  // sends, and so are the responses (a head and a 16-byte body, copied
  // behind the head): no SENDMSG at all.
  CHECK(s->sendmsg == 0);
  CHECK(s->send >= 6);
}

TEST_CASE("io backend: where the kernel refuses the newer io_uring setup flags, no receive asks to poll first",
          "[integration][io_uring]") {
  // A kernel older than 5.19 (the shim refuses flags newer than 5.10's)
  // does not know IORING_RECVSEND_POLL_FIRST: no entry carries it, and the
  // gateway serves as before.
  const std::string err =
      serve_proxied_requests({gateway_bin, "--io-backend", "io_uring"}, {shim, "URING_FLAGS_SHIM_ACCEPT=0x7f"}, 3);
  INFO("stderr: " << err);
  CHECK(occurrences(err, "uring_flags_shim: io_uring_queue_init flags 0x300 -> -22\n") >= 3);
  const auto s = submitted_counts(err);
  REQUIRE(s);
  CHECK(s->poll_first == 0);
  CHECK(s->recvmsg == 0);
  CHECK(s->recv >= 6);
}

TEST_CASE("io backend: --io-backend auto takes io_uring where the kernel allows it", "[integration][io_uring]") {
  const std::string err = serve_proxied_requests({gateway_bin, "--io-backend", "auto"});
  CHECK(err.find("gateway: I/O backend: io_uring\n") != std::string::npos);
  CHECK(err.find("io_uring refused") == std::string::npos);
}

TEST_CASE("io backend: where seccomp refuses io_uring, --io-backend auto (the default) falls back to epoll and serves",
          "[integration][io_uring]") {
  // No --io-backend at all: the default is auto.
  const std::string err = serve_proxied_requests({deny_bin, gateway_bin});
  CHECK(err.find("gateway: --io-backend auto: io_uring refused by the kernel: ") != std::string::npos);
  CHECK(err.find("(errno 1, EPERM); using epoll") != std::string::npos);
  CHECK(err.find("gateway: I/O backend: epoll\n") != std::string::npos);
}

TEST_CASE("io backend: where seccomp refuses io_uring, --io-backend io_uring exits 2 at start-up naming the flag and errno",
          "[integration][io_uring]") {
  test::child_process gw({deny_bin, gateway_bin, "--io-backend", "io_uring", "--listen", "127.0.0.1:0"});
  const auto status = gw.wait_exit(10s);
  INFO("stderr: " << gw.err());
  REQUIRE(status);  // exited, did not hang
  CHECK(*status == 2);
  CHECK(gw.err().find("gateway: --io-backend io_uring: io_uring refused by the kernel: ") != std::string::npos);
  CHECK(gw.err().find("Operation not permitted") != std::string::npos);
  CHECK(gw.err().find("errno 1, EPERM") != std::string::npos);
  CHECK(gw.err().find("--io-backend auto or epoll") != std::string::npos);
  CHECK(gw.err().find("listening on") == std::string::npos);
}

TEST_CASE(
    "io backend: where seccomp refuses io_uring, --check-config refuses --io-backend io_uring (exit 1) and passes auto",
    "[integration][io_uring]") {
  test::child_process refused({deny_bin, gateway_bin, "--check-config", "--io-backend", "io_uring"});
  auto status = refused.wait_exit(10s);
  INFO("stderr: " << refused.err());
  REQUIRE(status);
  CHECK(*status == 1);
  CHECK(refused.err().find("gateway: --io-backend io_uring: io_uring refused by the kernel: ") != std::string::npos);
  test::child_process fallback({deny_bin, gateway_bin, "--check-config", "--io-backend", "auto"});
  status = fallback.wait_exit(10s);
  INFO("stderr: " << fallback.err());
  REQUIRE(status);
  CHECK(*status == 0);
}

TEST_CASE("io backend: --io-backend refuses a value other than auto, epoll or io_uring with exit 2", "[integration][io_uring]") {
  test::child_process gw({gateway_bin, "--io-backend", "kqueue", "--listen", "127.0.0.1:0"});
  const auto status = gw.wait_exit(10s);
  REQUIRE(status);
  CHECK(*status == 2);
  CHECK(gw.err().find("--io-backend: invalid value 'kqueue': expected auto, epoll or io_uring") != std::string::npos);
}

TEST_CASE("io backend: --version names both backends and needs no ring, even where io_uring is refused", "[integration][io_uring]") {
  test::child_process gw({deny_bin, gateway_bin, "--version"});
  const auto status = gw.wait_exit(10s);
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(gw.out().find("(I/O backends: epoll, io_uring;") != std::string::npos);
}
