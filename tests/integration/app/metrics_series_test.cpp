// Every series /metrics exports is moved by something the gateway does: this
// test knows one action per series and fails when a series it does not know
// appears (a new figure comes with its trigger here) or when an action
// leaves its series where it was.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <openssl/ssl.h>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gateway/app/instance.hpp"
#include "gateway/json/reader.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/dns_responder.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/wait.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/tls_backend.hpp"
#include "tests/support/tls_client.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// An access-log sink that can be made to stop reading (a stalled terminal).
class blocking_sink {
 public:
  blocking_sink() {
    cookie_io_functions_t io{};
    io.write = [](void* self, const char*, std::size_t n) -> ssize_t {
      auto* s = static_cast<blocking_sink*>(self);
      std::unique_lock lock(s->mu_);
      s->cv_.wait(lock, [s] { return !s->blocked_; });
      return static_cast<ssize_t>(n);
    };
    file_ = ::fopencookie(this, "w", io);
  }
  ~blocking_sink() { std::fclose(file_); }
  std::FILE* file() const { return file_; }
  void block() {
    std::lock_guard lock(mu_);
    blocked_ = true;
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      blocked_ = false;
    }
    cv_.notify_all();
  }

 private:
  std::FILE* file_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool blocked_ = false;
};

// Outermost in every pipeline: throws or waits when a request asks it to.
class misbehaving_layer final : public http::layer {
 public:
  http::step enter(http::exchange& ex, http::layer_state&) override {
    if (ex.req.headers.find("x-test-throw") != nullptr) throw std::runtime_error("asked to throw");
    return ex.req.headers.find("x-test-wait") != nullptr ? http::step::wait : http::step::next;
  }
  asio::awaitable<http::step> await(http::exchange&, http::layer_state&) override {
    asio::steady_timer t(co_await asio::this_coro::executor, 600ms);
    co_await t.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    co_return http::step::next;
  }
};

using figures = std::map<std::string, std::int64_t>;

// /metrics as name -> value. Retried for a while: just after a crowd of
// connections closes, the gateway may still count them against its cap.
figures read_figures(std::uint16_t port) {
  std::optional<test::http_response> r;
  test::wait_until([&] {
    r = test::http_request(port, test::make_request("GET", "/metrics"));
    return r && r->status == 200;
  }, 3000ms);
  if (!r || r->status != 200) throw std::runtime_error("/metrics did not answer");
  auto doc = json::parse(r->body);
  if (!doc) throw std::runtime_error("/metrics is not JSON");
  figures out;
  for (const char* section : {"counters", "gauges"})
    for (const auto& m : doc.value().find(section)->members()) out[m.key] = m.value.as_int64().value_or(-1);
  return out;
}

// True when the gateway on `port` exports `name` (a series moved on another
// instance counts for this one only if this one exports it too).
bool last_known(std::uint16_t port, const std::string& name) { return read_figures(port).count(name) == 1; }

std::optional<test::http_response> ask(std::uint16_t port, const std::string& raw, const char* source = "127.0.0.2") {
  test::raw_client c(port, 5000ms, source);
  if (!c.send(raw)) return std::nullopt;
  return c.read_response();
}

std::string api(std::string_view target, std::string_view extra = {}) {
  return test::make_request("GET", target, {}, std::string("X-API-Key: k\r\n") + std::string(extra));
}

}  // namespace

TEST_CASE("every series /metrics exports is moved by something the gateway does", "[integration][metrics]") {
  test::recording_backend backend;
  backend.set_script([](const test::recorded_request& r) {
    test::reply out;
    if (r.target.starts_with("/hang")) {
      out.after = test::reply::then::hang;
    } else if (r.target.starts_with("/big")) {
      out.bytes = "HTTP/1.1 200 OK\r\nContent-Length: 33554432\r\n\r\n";
      out.generated_body = 32u << 20;
    } else {
      out.bytes = test::ok_response("ok");
      if (r.target.starts_with("/close")) out.after = test::reply::then::close;
      if (r.target.starts_with("/drop-reused") && r.index_on_connection > 0) {
        out.bytes.clear();  // closed unanswered, as when a backend closes as the request arrives
        out.after = test::reply::then::close;
      }
    }
    return out;
  });
  blocking_sink sink;
  auto cfg = test::test_config();
  cfg.threads = 1;
  cfg.backend = backend.url();
  cfg.api_keys = {"k"};
  cfg.access_log = "json";
  cfg.rate_limit = 20;
  cfg.rate_limit_exempt = {"/metrics"};  // read after every step below
  cfg.header_timeout = 300ms;
  cfg.max_connections = 40;
  cfg.body_budget = 256 * 1024;
  cfg.upstream_timeout = 300ms;
  cfg.upstream_idle_timeout = 400ms;
  cfg.upstream_max_concurrent = 1;
  cfg.upstream_queue_timeout = 50ms;
  std::string err;
  REQUIRE(core::add_route("/dead/", "http://127.0.0.1:" + std::to_string(test::closed_port()), cfg.routes, err));
  // Groups: one dead member and a live one; two dead ones. A member is
  // ejected at its first failure.
  const std::string dead = std::to_string(test::closed_port());
  cfg.eject_after = 1;
  REQUIRE(core::add_route("/group/", "http://127.0.0.1:" + dead + "," + backend.url(), cfg.routes, err));
  REQUIRE(core::add_route("/all-dead/", "http://127.0.0.1:" + dead + ",http://127.0.0.2:" + dead, cfg.routes, err));
  REQUIRE(core::add_route("/cors/", backend.url(), cfg.routes, err));
  cfg.routes.back().cors = core::cors_config{};
  cfg.routes.back().cors->origins = {"https://app.example"};
  // A backend wait longer than the sweep's two looks at a waiting client
  // (a quarter of the shortest timeout apart).
  REQUIRE(core::add_route("/patient/", backend.url(), cfg.routes, err));
  cfg.routes.back().timeout = 5s;
  app::instance gw(cfg, sink.file(), [](http::pipeline& p) { p.wrap(std::make_unique<misbehaving_layer>()); });
  gw.start();
  const std::uint16_t port = gw.port();

  const figures first = read_figures(port);
  std::set<std::string> moved;
  // Runs `action`, then notes which of `names` moved: a counter went up, a
  // gauge changed (seen by `during`, read while the action holds something).
  auto check = [&](std::vector<std::string> names, const std::function<void()>& action,
                   const std::function<figures()>& during = {}) {
    const figures before = read_figures(port);
    action();
    const figures after = during ? during() : read_figures(port);
    for (const auto& n : names) {
      INFO("series " << n << ": " << before.at(n) << " -> " << after.at(n));
      CHECK(after.at(n) != before.at(n));
      if (after.at(n) != before.at(n)) moved.insert(n);
    }
  };

  check({"requests_read", "connections_accepted", "client_bytes_read", "log_entries", "rate_limit_clients",
         "upstream_requests", "upstream_connections_opened", "upstream_connections", "upstream_idle_connections",
         "upstream_reused"},
        [&] {
          test::raw_client c(port, 5000ms, "127.0.0.2");
          for (int i = 0; i < 2; ++i) {
            REQUIRE(c.send(api("/api/ok")));
            auto r = c.read_response();
            REQUIRE(r);
            CHECK(r->status == 200);
          }
        });

  auto preflight = [&](std::string_view origin) {
    auto r = ask(port, "OPTIONS /cors/x HTTP/1.1\r\nHost: t\r\nOrigin: " + std::string(origin) +
                           "\r\nAccess-Control-Request-Method: GET\r\n\r\n");
    REQUIRE(r);
    return r->status;
  };
  check({"cors_preflights"}, [&] { CHECK(preflight("https://app.example") == 204); });
  check({"cors_refused"}, [&] { CHECK(preflight("https://elsewhere.example") == 403); });

  {
    std::vector<std::unique_ptr<test::raw_client>> idle;
    check({"connections", "coroutines"}, [] {},
          [&] {
            for (int i = 0; i < 3; ++i) idle.push_back(std::make_unique<test::raw_client>(port));
            figures f;
            test::wait_until([&] { return (f = read_figures(port))["connections"] >= first.at("connections") + 3; }, 3s);
            return f;
          });
    // Idle past a second, they shed their sessions and park.
    check({"parked_connections"}, [] {},
          [&] {
            figures f;
            test::wait_until([&] { return (f = read_figures(port))["parked_connections"] >= 3; }, 5s);
            return f;
          });
  }

  {
    std::thread slow;
    check({"requests_in_flight"}, [] {},
          [&] {
            slow = std::thread([port] { ask(port, test::make_request("GET", "/health", {}, "X-Test-Wait: 1\r\n")); });
            figures f;
            test::wait_until([&] { return (f = read_figures(port))["requests_in_flight"] >= 2; }, 3s);
            return f;
          });
    slow.join();
  }

  check({"session_exceptions"}, [&] {
    auto r = ask(port, test::make_request("GET", "/health", {}, "X-Test-Throw: 1\r\n"));
    CHECK_FALSE(r);  // the connection ends without an answer
  });

  check({"bad_requests"}, [&] {
    auto r = ask(port, "GET /a b c\r\n\r\n");
    REQUIRE(r);
    CHECK(r->status == 400);
  });

  check({"client_timeouts"}, [&] {
    auto r = ask(port, "GET /health HTTP/1.1\r\nHost: t\r\n");
    REQUIRE(r);
    CHECK(r->status == 408);
  });

  check({"request_body_buffers"}, [&] {
    auto r = ask(port, test::make_request("POST", "/api/ok", std::string(4096, 'b'), "X-API-Key: k\r\n"));
    REQUIRE(r);
    CHECK(r->status == 200);
  });

  {
    test::raw_client uploading(port, 5000ms, "127.0.0.3");
    check({"body_bytes_buffered"}, [] {},
          [&] {
            REQUIRE(uploading.send("POST /api/ok HTTP/1.1\r\nHost: t\r\nX-API-Key: k\r\nContent-Length: 100000\r\n\r\n0123"));
            figures f;
            test::wait_until([&] { return (f = read_figures(port))["body_bytes_buffered"] > 0; }, 3s);
            return f;
          });
  }

  check({"rejected_bodies"}, [&] {
    // Over the 256 KiB budget: refused once its bytes need more room than is left.
    auto r = ask(port, "POST /api/ok HTTP/1.1\r\nHost: t\r\nX-API-Key: k\r\nContent-Length: 300000\r\n\r\n" +
                           std::string(300000, 'x'));
    REQUIRE(r);
    CHECK(r->status == 503);
  });

  check({"rejected_connections"}, [&] {
    // The cap is 40: of 45 connections held at once, the last ones are
    // answered 503 and closed at once.
    std::vector<std::unique_ptr<test::raw_client>> crowd;
    for (int i = 0; i < 45; ++i) crowd.push_back(std::make_unique<test::raw_client>(port, 300ms));
    auto r = crowd.back()->read_response();
    REQUIRE(r);
    CHECK(r->status == 503);
  });

  check({"rate_limited"}, [&] {
    test::raw_client c(port, 5000ms, "127.0.0.9");
    int last = 0;
    for (std::uint32_t i = 0; i <= cfg.rate_limit; ++i) {
      REQUIRE(c.send(api("/api/ok")));
      auto r = c.read_response();
      REQUIRE(r);
      last = r->status;
    }
    CHECK(last == 429);
  });

  check({"auth_rejected"}, [&] {
    auto r = ask(port, test::make_request("GET", "/api/ok"));
    REQUIRE(r);
    CHECK(r->status == 401);
  });

  check({"upstream_connect_failures", "upstream_bad_gateway"}, [&] {
    auto r = ask(port, test::make_request("GET", "/dead/x"));
    REQUIRE(r);
    CHECK(r->status == 502);
  });

  check({"upstream_gateway_timeout", "upstream_busy_rejected"}, [&] {
    // Catch2's assertions are for the test's thread: the other thread only
    // records the status.
    std::atomic<int> first_status{0};
    std::thread first_waits([&] {
      auto r = ask(port, api("/api/hang"), "127.0.0.4");
      first_status = r ? r->status : -1;
    });
    // The one backend slot is taken: the next request waits 50 ms, then 503.
    REQUIRE(test::wait_until([&] { return backend.request_count() > 0 && read_figures(port)["requests_in_flight"] >= 2; },
                             3s));
    auto r = ask(port, api("/api/ok"), "127.0.0.5");
    REQUIRE(r);
    CHECK(r->status == 503);
    first_waits.join();
    CHECK(first_status == 504);
  });

  check({"upstream_discarded"}, [&] {
    const auto discarded = read_figures(port)["upstream_discarded"];
    {
      test::raw_client c(port, 5000ms, "127.0.0.6");
      REQUIRE(c.send(api("/api/big")));
      REQUIRE(c.read_response(true));  // the head only
    }
    // The client left with 32 MiB still to come: the gateway gives the
    // backend connection up rather than reading the rest.
    CHECK(test::wait_until([&] { return read_figures(port)["upstream_discarded"] > discarded; }, 5s));
  });

  check({"upstream_client_closed"}, [&] {
    const auto closed = read_figures(port)["upstream_client_closed"];
    const auto received = backend.request_count();
    {
      test::raw_client c(port, 5000ms, "127.0.0.12");
      REQUIRE(c.send(test::make_request("GET", "/patient/hang")));
      REQUIRE(test::wait_until([&] { return backend.request_count() > received; }, 3s));
    }
    // The client left while the backend kept silent: the sweep ends the
    // exchange (499).
    CHECK(test::wait_until([&] { return read_figures(port)["upstream_client_closed"] > closed; }, 3s));
  });

  // The first request to /group/ goes to the dead member (round robin
  // starts with the first), which is ejected, and the request is answered
  // by the live one.
  check({"upstream_failovers", "upstream_ejections"}, [&] {
    auto r = ask(port, test::make_request("GET", "/group/x"));
    REQUIRE(r);
    CHECK(r->status == 200);
  });
  // With every member dead each request spends a retry: past the floor of
  // 3 a second, 20 % of a handful of requests allows none.
  check({"upstream_retries_over_budget"}, [&] {
    for (int i = 0; i < 5; ++i) {
      auto r = ask(port, test::make_request("GET", "/all-dead/x"));
      REQUIRE(r);
      CHECK(r->status == 502);
    }
  });

  check({"upstream_retries"}, [&] {
    test::raw_client c(port, 5000ms, "127.0.0.7");
    REQUIRE(c.send(api("/api/ok")));
    REQUIRE(c.read_response());
    // The pooled connection is taken and the backend closes it unanswered:
    // the GET is sent again on a fresh one.
    REQUIRE(c.send(api("/api/drop-reused")));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
  });

  check({"upstream_stale"}, [&] {
    test::raw_client c(port, 5000ms, "127.0.0.8");
    const auto stale = read_figures(port)["upstream_stale"];
    REQUIRE(c.send(api("/api/close-after")));
    REQUIRE(c.read_response());
    // The idle connection's pending read sees the FIN and the pool closes it.
    CHECK(test::wait_until([&] { return read_figures(port)["upstream_stale"] > stale; }, 3s));
    REQUIRE(c.send(api("/api/ok")));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
  });

  check({"upstream_idle_expired"}, [&] {
    REQUIRE(ask(port, api("/api/ok"), "127.0.0.10"));
    const auto expired = read_figures(port)["upstream_idle_expired"];
    CHECK(test::wait_until([&] { return read_figures(port)["upstream_idle_expired"] > expired; }, 3s));
  });

  check({"access_log_dropped"}, [&] {
    sink.block();
    test::raw_client c(port, 5000ms, "127.0.0.11");
    std::string batch;
    for (int i = 0; i < 200; ++i) batch += test::make_request("GET", "/health");
    // Each line is a few hundred bytes: the log's 1 MiB buffer is full long
    // before 20,000 requests.
    std::int64_t dropped = 0;
    for (int round = 0; round < 100 && dropped == 0; ++round) {
      REQUIRE(c.send(batch));
      for (int i = 0; i < 200; ++i) REQUIRE(c.read_response());
      dropped = read_figures(port)["access_log_dropped"];
    }
    sink.release();
  });

  check({"config_reloads"}, [&] {
    std::string message;
    CHECK(gw.reload(cfg, message));
  });

  check({"accept_errors"}, [&] {
    // Out of descriptors: connect two sockets made beforehand, with the
    // process's table full, so the gateway's accept (same process) fails.
    int a = ::socket(AF_INET, SOCK_STREAM, 0), b = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(a >= 0);
    REQUIRE(b >= 0);
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
    std::vector<int> fillers;
    const int null_fd = ::open("/dev/null", O_RDONLY);
    REQUIRE(null_fd >= 0);
    for (int fd = ::dup(null_fd); fd >= 0 && fillers.size() < 4096; fd = ::dup(null_fd)) {
      fillers.push_back(fd);
      if (fillers.size() == 1) {
        rlimit tight = saved;
        tight.rlim_cur = static_cast<rlim_t>(fd) + 64;
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
      }
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(::connect(a, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
    CHECK(::connect(b, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
    std::this_thread::sleep_for(100ms);  // the worker tries to accept meanwhile (and backs off)
    for (int fd : fillers) ::close(fd);
    ::close(null_fd);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
    ::close(a);
    ::close(b);
  });

  // proxy_protocol_rejected moves only with --proxy-protocol, which this
  // gateway runs without: a second one, with it, refuses a plain request.
  {
    auto pp = test::test_config();
    pp.threads = 1;
    pp.proxy_protocol = true;
    app::instance gw2(pp, stdout);
    gw2.start();
    test::raw_client c(gw2.port(), 5000ms);
    REQUIRE(c.send(test::make_request("GET", "/metrics")));
    CHECK(c.read_all().empty());
    const bool counted = test::wait_until([&] { return gw2.server().live().proxy_rejected == 1; }, 3s);
    CHECK(counted);
    if (counted && read_figures(port).count("proxy_protocol_rejected") == 1) moved.insert("proxy_protocol_rejected");
    gw2.stop();
    gw2.wait();
  }

  // The rate-limit store's series move only with --rate-limit-store: a
  // gateway sharing a real redis-server (failure mode open) and one whose
  // store is down (closed) move them, and they are exported here too.
  {
    REQUIRE(test::redis_server::available());
    test::redis_server redis;
    REQUIRE(redis.start());
    auto sc = test::test_config();
    sc.threads = 1;
    sc.rate_limit_exempt = {"/metrics"};
    sc.rate_limit_store = redis.url();
    sc.rate_limit_store_timeout = 50ms;
    sc.rate_limit = 1000;  // enough left for slices (more than 64 x 2)
    app::instance gs(sc, stdout);
    const figures quiet = read_figures(port);
    gs.start();
    const std::uint16_t sp = gs.port();
    auto store_moved = [&](const std::vector<std::string>& names, const figures& before) {
      const figures after = read_figures(sp);
      for (const auto& n : names) {
        INFO("series " << n << ": " << before.at(n) << " -> " << after.at(n));
        CHECK(after.at(n) != before.at(n));
        if (after.at(n) != before.at(n) && last_known(port, n)) moved.insert(n);
      }
    };
    CHECK(test::wait_until([&] { return read_figures(sp).at("rate_limit_store_connections") == 2; }, 10s));
    store_moved({"rate_limit_store_connections", "rate_limit_store_up", "rate_limit_store_connects",
                 "rate_limit_store_state_changes"},
                quiet);
    figures before = read_figures(sp);
    CHECK(ask(sp, test::make_request("GET", "/health"))->status == 200);
    store_moved({"rate_limit_store_checks"}, before);
    // The same client again within a bucket asks for a slice of 2: the
    // request after it is allowed from the slice.
    before = read_figures(sp);
    for (int i = 0; i < 3; ++i) CHECK(ask(sp, test::make_request("GET", "/health"))->status == 200);
    store_moved({"rate_limit_store_slice_hits"}, before);
    // A key of the wrong type makes the script fail: an error, decided locally.
    test::child_process cli({"/usr/bin/redis-cli", "-p", std::to_string(redis.port()), "SET",
                             "rl:60000000:127.0.0.3", "x"});
    REQUIRE(cli.wait_exit(10s) == 0);
    before = read_figures(sp);
    CHECK(ask(sp, test::make_request("GET", "/health"), "127.0.0.3")->status == 200);
    store_moved({"rate_limit_store_errors", "rate_limit_store_fallbacks"}, before);
    // A stopped Redis: the answer does not come within 50 ms (for a client
    // that holds no slice).
    redis.signal(SIGSTOP);
    before = read_figures(sp);
    CHECK(ask(sp, test::make_request("GET", "/health"), "127.0.0.4")->status == 200);
    store_moved({"rate_limit_store_timeouts"}, before);
    redis.signal(SIGCONT);
    gs.stop();
    gs.wait();
    redis.kill();

    auto closed = test::test_config();
    closed.threads = 1;
    closed.rate_limit_exempt = {"/metrics"};
    closed.rate_limit_store = "redis://127.0.0.1:" + std::to_string(test::closed_port());
    closed.rate_limit_store_failure = "closed";
    app::instance gc(closed, stdout);
    gc.start();
    const figures cb = read_figures(gc.port());
    CHECK(ask(gc.port(), test::make_request("GET", "/health"))->status == 503);
    const figures ca = read_figures(gc.port());
    CHECK(ca.at("rate_limit_store_unavailable") == cb.at("rate_limit_store_unavailable") + 1);
    if (ca.at("rate_limit_store_unavailable") != cb.at("rate_limit_store_unavailable") &&
        last_known(port, "rate_limit_store_unavailable"))
      moved.insert("rate_limit_store_unavailable");
    gc.stop();
    gc.wait();
  }

  // The TLS series move only with https:// backends: a gateway with a
  // trusted backend (no pooling, so the second request resumes the first's
  // session) and one whose certificate names another host.
  {
    test::tls_material tls;
    test::tls_backend good(tls.cert, tls.key);
    test::tls_backend wrong(tls.wrong_cert, tls.wrong_key);
    auto tc = test::test_config();
    tc.threads = 1;
    tc.rate_limit_enabled = false;
    tc.upstream_ca = {tls.ca};
    tc.upstream_max_idle = 0;
    REQUIRE(core::add_route("/good/", good.url(), tc.routes, err));
    REQUIRE(core::add_route("/wrong/", wrong.url(), tc.routes, err));
    app::instance gt(tc, stdout);
    gt.start();
    const std::uint16_t tp = gt.port();
    auto tls_moved = [&](const std::vector<std::string>& names, const figures& before) {
      const figures after = read_figures(tp);
      for (const auto& n : names) {
        INFO("series " << n << ": " << before.at(n) << " -> " << after.at(n));
        CHECK(after.at(n) != before.at(n));
        if (after.at(n) != before.at(n) && last_known(port, n)) moved.insert(n);
      }
    };
    figures before = read_figures(tp);
    CHECK(ask(tp, test::make_request("GET", "/good/x"))->status == 200);
    CHECK(ask(tp, test::make_request("GET", "/good/x"))->status == 200);
    tls_moved({"upstream_tls_handshakes", "upstream_tls_resumed"}, before);
    before = read_figures(tp);
    CHECK(ask(tp, test::make_request("GET", "/wrong/x"))->status == 502);
    tls_moved({"upstream_tls_failures", "upstream_tls_verify_failures"}, before);
    gt.stop();
    gt.wait();
  }

  // The client-side TLS series move only on a TLS listener: a gateway with
  // a certificate serves one full handshake and one resumed, cuts a stalled
  // one by its header timeout and refuses plain HTTP. Read from its
  // counters (its /metrics speaks TLS).
  {
    test::tls_material tls;
    auto lc = test::test_config();
    lc.threads = 1;
    lc.rate_limit_enabled = false;
    lc.header_timeout = 300ms;
    lc.tls_certs = {tls.cert};
    lc.tls_keys = {tls.key};
    app::instance gl(lc, stdout);
    gl.start();
    test::tls_client_options o;
    o.ca_file = tls.ca;
    o.server_name = "localhost";
    SSL_SESSION* session = nullptr;
    {
      test::tls_client full(gl.port(), o);
      REQUIRE(full.connected());
      REQUIRE(full.send("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"));
      REQUIRE(full.read_response());
      session = full.take_session();
    }
    REQUIRE(session != nullptr);
    o.session = session;
    {
      test::tls_client again(gl.port(), o);
      REQUIRE(again.connected());
      CHECK(again.resumed());
      REQUIRE(again.send("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"));
      REQUIRE(again.read_response());
    }
    SSL_SESSION_free(session);
    {
      test::raw_client silent(gl.port(), 5000ms);
      CHECK(silent.wait_closed());
    }
    CHECK_FALSE(ask(gl.port(), test::make_request("GET", "/health")).has_value());
    const auto counts = [&] { return gl.server().live(); };
    CHECK(test::wait_until([&] { return counts().tls_failures == 1 && counts().tls_timeouts == 1; }, 5000ms));
    const auto l = counts();
    CHECK(l.tls_handshakes == 2);
    CHECK(l.tls_resumed == 1);
    const std::pair<const char*, std::int64_t> tls_series[] = {{"tls_handshakes", l.tls_handshakes},
                                                               {"tls_resumed", l.tls_resumed},
                                                               {"tls_handshake_failures", l.tls_failures},
                                                               {"tls_handshake_timeouts", l.tls_timeouts}};
    for (const auto& [name, value] : tls_series)
      if (value > 0 && last_known(port, name)) moved.insert(name);
    gl.stop();
    gl.wait();
  }

  {
    // Backend host names, on a second instance (this one's backends are
    // numeric): resolved at start-up, an address change, a DNS server gone.
    test::dns_responder dns("svc.gateway.test", {"127.0.0.1"}, 1);
    auto named = test::test_config();
    named.threads = 1;
    named.rate_limit_enabled = false;
    named.access_log = "off";
    const std::string url = backend.url();
    named.backend = "http://svc.gateway.test:" + url.substr(url.rfind(':') + 1);
    named.dns_server = dns.server();
    app::instance gn(named, stdout);
    gn.start();
    const figures nb = read_figures(gn.port());
    CHECK(nb.at("dns_names") == 1);
    CHECK(nb.at("dns_resolutions") >= 1);
    for (const char* n : {"dns_names", "dns_resolutions"})
      if (nb.at(n) != first.at(n) && last_known(port, n)) moved.insert(n);
    dns.set({"127.0.0.2"}, 1);
    CHECK(test::wait_until([&] { return read_figures(gn.port()).at("dns_changes") == 1; }, 5000ms));
    dns.stop();
    CHECK(test::wait_until([&] { return read_figures(gn.port()).at("dns_failures") >= 1; }, 5000ms));
    const figures na = read_figures(gn.port());
    for (const char* n : {"dns_changes", "dns_failures"})
      if (na.at(n) != nb.at(n) && last_known(port, n)) moved.insert(n);
    gn.stop();
    gn.wait();
  }

  // Every exported series was moved above, and nothing else is exported.
  const figures last = read_figures(port);
  std::set<std::string> exported;
  for (const auto& [name, value] : last) exported.insert(name);
  CHECK(exported == moved);
  gw.stop();
  gw.wait();
}
