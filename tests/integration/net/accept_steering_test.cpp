// Which worker takes a new connection (net/accept_steering.hpp): with few
// connections open, the worker whose index is the CPU that sent the SYN
// (loopback handles a SYN on the sender's CPU), so a client opening one
// connection after another keeps meeting the same worker; with many open,
// the kernel's hash spreads them over both workers.
#include <catch2/catch.hpp>
#include <pthread.h>
#include <sched.h>

#include <memory>
#include <string>
#include <vector>

#include "gateway/net/accept_steering.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view health = "GET /health HTTP/1.1\r\nHost: test\r\n\r\n";

// The CPUs the calling thread may run on.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

// Keeps the calling thread on one CPU while it lives.
class pinned {
 public:
  explicit pinned(int cpu) {
    CPU_ZERO(&old_);
    pthread_getaffinity_np(pthread_self(), sizeof old_, &old_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ok_ = pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
  }
  ~pinned() { pthread_setaffinity_np(pthread_self(), sizeof old_, &old_); }
  pinned(const pinned&) = delete;
  pinned& operator=(const pinned&) = delete;
  bool ok() const { return ok_; }

 private:
  cpu_set_t old_;
  bool ok_ = false;
};

// Connections each worker has accepted so far.
std::vector<long long> accepted(test::running_server& srv) {
  std::vector<long long> out;
  for (const core::live_shard& s : srv.server().stats()) out.push_back(s.connections_total.load());
  return out;
}

// One /health request on a connection of its own, closed after the answer.
bool one_connection(std::uint16_t port) {
  test::raw_client c(port, 5000ms);
  if (!c.send(health)) return false;
  auto r = c.read_response();
  return r && r->status == 200;
}

}  // namespace

TEST_CASE("with few connections open a client's connections all go to the worker at its CPU", "[integration][net]") {
  test::running_server srv(test::test_config());
  REQUIRE(srv.server().worker_count() == 2);
  REQUIRE(srv.server().steering() != nullptr);
  REQUIRE(srv.server().steering()->active());
  const std::vector<int> cpus = allowed_cpus();
  REQUIRE(!cpus.empty());
  // Two CPUs of different parity where the machine has them, so both
  // workers are expected to be chosen once.
  std::vector<int> tried{cpus.front()};
  for (int c : cpus)
    if (c % 2 != cpus.front() % 2) {
      tried.push_back(c);
      break;
    }
  for (int cpu : tried) {
    INFO("client on CPU " << cpu);
    const pinned on(cpu);
    REQUIRE(on.ok());
    const auto before = accepted(srv);
    for (int i = 0; i < 20; ++i) REQUIRE(one_connection(srv.port()));
    const auto after = accepted(srv);
    const std::size_t expected = static_cast<std::size_t>(cpu) % 2;
    CHECK(after[expected] - before[expected] == 20);
    CHECK(after[1 - expected] == before[1 - expected]);
    REQUIRE(test::wait_until([&] { return srv.server().live().connections == 0; }, 5000ms));
  }
}

TEST_CASE("with many connections open new ones are spread over both workers and steering returns when they close",
          "[integration][net]") {
  test::running_server srv(test::test_config());
  REQUIRE(srv.server().steering() != nullptr);
  REQUIRE(srv.server().steering()->active());
  const std::vector<int> cpus = allowed_cpus();
  REQUIRE(!cpus.empty());
  const pinned on(cpus.front());
  REQUIRE(on.ok());
  CHECK(srv.server().steering()->by_cpu_now());
  const auto before = accepted(srv);
  std::vector<std::unique_ptr<test::raw_client>> held;
  for (int i = 0; i < 64; ++i) {
    held.push_back(std::make_unique<test::raw_client>(srv.port(), 5000ms));
    REQUIRE(held.back()->send(health));
    auto r = held.back()->read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  CHECK_FALSE(srv.server().steering()->by_cpu_now());
  const auto after = accepted(srv);
  // At most 2 x 4 + 1 connections followed the CPU before the switch; the
  // hash put each of the other 55 or more on either worker with even odds
  // (fewer than 10 on one side: probability below 1e-6).
  CHECK(after[0] - before[0] >= 10);
  CHECK(after[1] - before[1] >= 10);
  held.clear();
  REQUIRE(test::wait_until([&] { return srv.server().live().connections == 0; }, 5000ms));
  CHECK(srv.server().steering()->by_cpu_now());
  // And a client's connections follow its CPU again.
  const auto again = accepted(srv);
  for (int i = 0; i < 10; ++i) REQUIRE(one_connection(srv.port()));
  const auto last = accepted(srv);
  const std::size_t expected = static_cast<std::size_t>(cpus.front()) % 2;
  CHECK(last[expected] - again[expected] == 10);
}
