// A client that leaves while its request waits for the backend's response
// head: the gateway notices (its worker's sweep, http/upstream_guard.hpp),
// closes the backend connection, frees the --upstream-max-concurrent slot,
// logs and counts the request as 499 and sends nothing. A client that only
// pipelines its next request meanwhile is still served. The same over
// HTTPS, where a client may end with close_notify before (or without) its
// FIN. The gateway runs as its own process, once on each --io-backend.
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/files.hpp"
#include "tests/support/tls_client.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// The answers to a client that sent /api/late and then, pipelined,
// /api/fast: both, in that order.
template <class Client>
void read_late_then_fast(Client& c) {
  const auto first = c.read_response();
  REQUIRE(first);
  CHECK(first->status == 200);
  CHECK(first->body == "late");
  const auto second = c.read_response();
  REQUIRE(second);
  CHECK(second->status == 200);
  CHECK(second->body == "fast");
}

const std::string gateway_bin = std::string(GATEWAY_BIN_DIR) + "/gateway";

std::string api(std::string_view target) { return test::make_request("GET", target, {}, "X-API-Key: k\r\n"); }

// The backend: /slow... is never answered (its connection is read until the
// gateway closes it), /late... is answered after 1.5 s (several sweeps of
// the gateway: 250 ms apart with these flags), anything else at once.
void script_backend(test::recording_backend& backend) {
  backend.set_script([](const test::recorded_request& r) {
    if (r.target.starts_with("/slow")) return test::reply{"", 0, test::reply::then::hang};
    if (r.target.starts_with("/late"))
      return test::reply{test::ok_response("late"), 0, test::reply::then::keep_open, 1500ms};
    return test::reply{test::ok_response("fast")};
  });
}

// `first` followed by `then`.
std::vector<std::string> joined(std::vector<std::string> first, const std::vector<std::string>& then) {
  first.insert(first.end(), then.begin(), then.end());
  return first;
}

// The gateway on `io_backend`, one worker, `max_concurrent` backend requests
// at once; `extra` flags after the others (--tls-cert and --tls-key).
struct gateway_process {
  gateway_process(const std::string& io_backend, const test::recording_backend& backend, const char* max_concurrent,
                  const std::vector<std::string>& extra = {})
      : gw(joined({gateway_bin, "--io-backend", io_backend, "--listen", "127.0.0.1:0", "--threads", "1", "--backend",
                   backend.url(), "--api-key", "k", "--upstream-max-concurrent", max_concurrent, "--upstream-timeout",
                   "20s", "--rate-limit-exempt", "/metrics", "--access-log", "json"},
                  extra)) {
    const auto listening = gw.wait_for_line("listening on", true, 10s);
    INFO("stderr: " << gw.err());
    REQUIRE(listening);
    port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
    REQUIRE(port != 0);
  }
  // SIGTERM: a clean exit, nothing left in flight.
  void stop() {
    gw.signal(SIGTERM);
    const auto status = gw.wait_exit(15s);
    INFO("stderr: " << gw.err());
    REQUIRE(status);
    CHECK(*status == 0);
  }
  test::child_process gw;
  std::uint16_t port = 0;
};

// The known-issues scenario: two clients fill the cap of 2 on a backend that
// does not answer, then close; the backend sees both connections closed and
// a third client gets its answer, not 503.
void leaving_clients_free_their_slots(const std::string& io_backend) {
  test::recording_backend backend;
  script_backend(backend);
  gateway_process g(io_backend, backend, "2");
  {
    std::vector<std::unique_ptr<test::raw_client>> leaving;
    for (const char* target : {"/api/slow-1", "/api/slow-2"}) {
      leaving.push_back(std::make_unique<test::raw_client>(g.port, 5000ms));
      REQUIRE(leaving.back()->send(api(target)));
    }
    REQUIRE(test::wait_until([&] { return backend.request_count() == 2 && backend.open_connections() == 2; }, 5000ms));
  }  // both clients close
  INFO("stderr: " << g.gw.err());
  CHECK(test::wait_until([&] { return backend.open_connections() == 0; }, 3000ms));
  CHECK(test::wait_until([&] { return test::counter(g.port, "upstream_client_closed") == 2; }, 3000ms));
  auto third = test::http_request(g.port, api("/api/fast"));
  REQUIRE(third);
  CHECK(third->status == 200);
  CHECK(third->body == "fast");
  CHECK(test::counter(g.port, "upstream_busy_rejected") == 0);
  // The access log has them as 499 (nginx's "client closed request").
  CHECK(g.gw.wait_for_count("\"status\":499", 2, false, 3000ms));
  g.stop();
  CHECK(g.gw.out().find("\"path\":\"/api/slow-1\"") != std::string::npos);
}

// A client that pipelines its next request while the first waits on the
// backend is readable, not gone: it gets both answers. Beside it, a client
// that pipelines and then closes, and one that half-closes (shutdown
// SHUT_WR) after its request, are gone: their end of stream is behind the
// unread bytes or alone.
void pipelining_client_stays(const std::string& io_backend) {
  test::recording_backend backend;
  script_backend(backend);
  gateway_process g(io_backend, backend, "8");
  test::raw_client stays(g.port, 8000ms);
  REQUIRE(stays.send(api("/api/late")));
  REQUIRE(test::wait_until([&] { return backend.request_count() == 1; }, 5000ms));
  REQUIRE(stays.send(api("/api/fast")));  // arrives while /late waits
  {
    test::raw_client closes(g.port, 5000ms);
    REQUIRE(closes.send(api("/api/slow-closes")));
    REQUIRE(test::wait_until([&] { return backend.request_count() == 2; }, 5000ms));
    REQUIRE(closes.send(api("/api/fast-never")));  // unread when the FIN comes
  }
  test::raw_client half(g.port, 5000ms);
  REQUIRE(half.send(api("/api/slow-half")));
  REQUIRE(test::wait_until([&] { return backend.request_count() == 3; }, 5000ms));
  REQUIRE(::shutdown(half.fd(), SHUT_WR) == 0);
  INFO("stderr: " << g.gw.err());
  // Both are found gone within the 1.5 s the first client's answer takes.
  CHECK(test::wait_until([&] { return test::counter(g.port, "upstream_client_closed") == 2; }, 1300ms));
  // The half-closed client gets no response: the connection just ends.
  CHECK(half.read_all().empty());
  read_late_then_fast(stays);
  CHECK(test::counter(g.port, "upstream_client_closed") == 2);
  // The request pipelined behind the FIN never reached the backend.
  for (const auto& r : backend.requests()) CHECK(r.target != "/fast-never");
  g.stop();
}

// The same over HTTPS, each client alone in turn while a request of its
// own waits on a backend that does not answer: one closes its socket
// without close_notify, one sends close_notify and then closes, and one
// sends close_notify alone and keeps its socket open (TLS's half-close,
// RFC 8446 section 6.1: it sends nothing more), once on TLS 1.3 and once
// on TLS 1.2 (whose alert is a record of its own type, where TLS 1.3's
// looks like application data). Each is found gone within two sweep
// periods (250 ms each with these flags) of its leaving: its backend
// connection is closed, the request counts as 499, and the client gets no
// response. A client that pipelines meanwhile stays, as over plain HTTP.
void tls_clients_that_leave_are_let_go(const std::string& io_backend) {
  test::temp_dir dir;
  const std::string cert = dir.file("gw.pem"), key = dir.file("gw.key");
  test::make_certificate({"localhost"}, cert, key);
  test::recording_backend backend;
  script_backend(backend);
  gateway_process g(io_backend, backend, "8", {"--tls-cert", cert, "--tls-key", key});
  INFO("stderr: " << g.gw.err());
  enum class leaving { drop, notify_then_close, notify_only };
  struct step {
    leaving how;
    int version;
    const char* target;
  };
  const step steps[] = {
      {leaving::drop, TLS1_3_VERSION, "/api/slow-drop"},
      {leaving::notify_then_close, TLS1_3_VERSION, "/api/slow-notify-close"},
      {leaving::notify_only, TLS1_3_VERSION, "/api/slow-notify-13"},
      {leaving::notify_only, TLS1_2_VERSION, "/api/slow-notify-12"},
  };
  long long gone = 0;
  for (const step& s : steps) {
    INFO("client: " << s.target);
    test::tls_client_options o;
    o.min_version = o.max_version = s.version;
    o.timeout = 5000ms;
    test::tls_client client(g.port, o);
    REQUIRE(client.connected());
    REQUIRE(client.send(api(s.target)));
    REQUIRE(test::wait_until([&] { return backend.request_count() == static_cast<std::size_t>(gone) + 1; }, 5000ms));
    REQUIRE(backend.open_connections() == 1);
    if (s.how != leaving::drop) REQUIRE(client.send_close_notify());
    if (s.how != leaving::notify_only) client.close_socket();
    CHECK(test::wait_until([&] { return backend.open_connections() == 0; }, 1000ms));
    ++gone;
    CHECK(test::wait_until([&] { return test::tls_metric(g.port, "counters", "upstream_client_closed") == gone; },
                           1000ms));
    // No response: the gateway ends the connection (close_notify, FIN).
    if (s.how == leaving::notify_only) CHECK(client.wait_closed());
  }
  // A client that pipelines its next request, behind a KeyUpdate that
  // asks for one in return, while the first waits: its records are read
  // by the sweep's look (the KeyUpdate answered), and it stays and gets
  // both answers.
  test::tls_client_options o;
  o.min_version = o.max_version = TLS1_3_VERSION;
  o.timeout = 5000ms;
  test::tls_client stays(g.port, o);
  REQUIRE(stays.connected());
  REQUIRE(stays.send(api("/api/late")));
  REQUIRE(test::wait_until([&] { return backend.request_count() == std::size(steps) + 1; }, 5000ms));
  REQUIRE(stays.request_key_update());
  REQUIRE(stays.send(api("/api/fast")));
  read_late_then_fast(stays);
  CHECK(stays.key_updates_received() == 1);
  CHECK(test::tls_metric(g.port, "counters", "upstream_client_closed") == gone);
  CHECK(g.gw.wait_for_count("\"status\":499", 4, false, 3000ms));
  g.stop();
}

}  // namespace

// Each backend the gateway binary of this build has: epoll unless it is
// the io_uring-only build, io_uring where it was built in.
#if !defined(GATEWAY_IO_URING)
TEST_CASE("client gone: on epoll, clients that close while the backend is silent free their slots and backend connections",
          "[integration][proxy]") {
  leaving_clients_free_their_slots("epoll");
}

TEST_CASE("client gone: on epoll, a client pipelining while it waits gets both answers, closing ones are let go",
          "[integration][proxy]") {
  pipelining_client_stays("epoll");
}

TEST_CASE("client gone: on epoll, HTTPS clients that close or send close_notify while the backend is silent are let go",
          "[integration][proxy][tls]") {
  tls_clients_that_leave_are_let_go("epoll");
}
#endif

#if defined(GATEWAY_TEST_IO_URING)
TEST_CASE("client gone: on io_uring, clients that close while the backend is silent free their slots and backend connections",
          "[integration][proxy]") {
  leaving_clients_free_their_slots("io_uring");
}

TEST_CASE("client gone: on io_uring, a client pipelining while it waits gets both answers, closing ones are let go",
          "[integration][proxy]") {
  pipelining_client_stays("io_uring");
}

TEST_CASE(
    "client gone: on io_uring, HTTPS clients that close or send close_notify while the backend is silent are let go",
    "[integration][proxy][tls]") {
  tls_clients_that_leave_are_let_go("io_uring");
}
#endif
