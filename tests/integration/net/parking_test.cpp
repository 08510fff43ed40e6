// Idle plain keep-alive connections in the worker's parking lot
// (net/parking_lot.hpp): after a second without a byte their session ends
// and the descriptor waits outside Asio. They still count as open, come back
// for the next request, and close at their idle timeout, when the client
// leaves, or at a drain.
#include <catch2/catch.hpp>

#include <string>

#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view health = "GET /health HTTP/1.1\r\nHost: test\r\n\r\n";

// Only the accept loops (one per worker) are coroutines: every connection parked.
bool all_parked(test::running_server& srv) { return srv.server().live().coroutines == 2; }

}  // namespace

TEST_CASE("a parked plain connection is counted as open and serves its next requests, pipelined too",
          "[integration][net]") {
  test::running_server srv(test::test_config());
  test::raw_client c(srv.port(), 5000ms);
  REQUIRE(c.send(health));
  auto first = c.read_response();
  REQUIRE(first);
  CHECK(first->status == 200);
  REQUIRE(test::wait_until([&] { return all_parked(srv); }, 5000ms));
  CHECK(srv.server().live().connections == 1);
  REQUIRE(c.send(health));
  auto second = c.read_response();
  REQUIRE(second);
  CHECK(second->status == 200);
  // Parked again, then two requests in one segment: both answered in order.
  REQUIRE(test::wait_until([&] { return all_parked(srv); }, 5000ms));
  REQUIRE(c.send(std::string(health) + std::string(health)));
  auto a = c.read_response();
  auto b = c.read_response();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->status == 200);
  CHECK(b->status == 200);
  CHECK(srv.server().live().connections == 1);
}

TEST_CASE("a parked connection closes when its client leaves and at its idle timeout", "[integration][net]") {
  auto cfg = test::test_config();
  cfg.idle_timeout = 2s;
  test::running_server srv(cfg);
  {
    test::raw_client leaving(srv.port(), 5000ms);
    REQUIRE(leaving.send(health));
    REQUIRE(leaving.read_response());
    REQUIRE(test::wait_until([&] { return all_parked(srv); }, 5000ms));
    CHECK(srv.server().live().connections == 1);
  }  // closed by the client while parked
  CHECK(test::wait_until([&] { return srv.server().live().connections == 0; }, 5000ms));

  test::raw_client idle(srv.port(), 6000ms);
  REQUIRE(idle.send(health));
  REQUIRE(idle.read_response());
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(test::wait_until([&] { return all_parked(srv); }, 5000ms));
  // Parked after about a second, closed by the gateway at 2 s idle.
  CHECK(idle.wait_closed());
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= 1500ms);
  CHECK(waited < 5000ms);
  CHECK(test::wait_until([&] { return srv.server().live().connections == 0; }, 2000ms));
  CHECK(test::counter(srv.port(), "client_timeouts") == 0);  // an idle close is not a timed-out request
}

TEST_CASE("a drain closes parked connections at once and the server stops", "[integration][net]") {
  test::running_server srv(test::test_config());
  test::raw_client c(srv.port(), 5000ms);
  REQUIRE(c.send(health));
  REQUIRE(c.read_response());
  REQUIRE(test::wait_until([&] { return all_parked(srv); }, 5000ms));
  const auto start = std::chrono::steady_clock::now();
  srv.stop_and_wait();
  // Well inside the 2 s drain deadline: nothing waited for the parked one.
  CHECK(std::chrono::steady_clock::now() - start < 1500ms);
  CHECK(c.wait_closed());
  CHECK(srv.server().live().connections == 0);
}
