// The shared rate-limit store against a real redis-server (started by the
// test on a free loopback port, stopped by PID): gateway binaries sharing
// one budget exactly, and what they do while Redis is killed, stopped and
// back, under load.
#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child_process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::string get(std::string_view path, std::string_view extra = {}) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

struct gateway_process {
  std::unique_ptr<test::child_process> proc;
  std::uint16_t port = 0;
};

gateway_process start_gateway(std::vector<std::string> args) {
  args.insert(args.begin(), {std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--access-log",
                             "off", "--rate-limit-exempt", "/metrics"});
  gateway_process g;
  g.proc = std::make_unique<test::child_process>(args);
  const auto line = g.proc->wait_for_line("listening on", true, 10s);
  REQUIRE(line);
  g.port = static_cast<std::uint16_t>(test::port_after_listening_on(*line));
  REQUIRE(g.port != 0);
  return g;
}

// Every Redis connection of every worker is ready (the first requests of a
// fresh instance would otherwise be decided locally).
bool store_ready(std::uint16_t port, long long connections) {
  return test::wait_until([&] { return test::gauge(port, "rate_limit_store_connections") == connections; }, 10s);
}

int status_of(std::uint16_t port, const char* source_ip, std::string* remaining = nullptr) {
  test::raw_client c(port, 5000ms, source_ip);
  if (!c.send(get("/health"))) return -1;
  auto r = c.read_response();
  if (!r) return -1;
  if (remaining) *remaining = r->header("RateLimit-Remaining");
  return r->status;
}

// The client's hash in Redis: the sum of its counted buckets ("s").
long long counted_in_redis(const test::redis_server& redis, const std::string& key) {
  test::child_process cli({"/usr/bin/redis-cli", "-p", std::to_string(redis.port()), "HGET", key, "s"});
  if (cli.wait_exit(10s) != 0) return -1;
  try {
    return std::stoll(cli.out());
  } catch (...) {
    return -1;
  }
}

// Every key in the Redis database.
std::set<std::string> redis_keys(const test::redis_server& redis) {
  test::child_process cli({"/usr/bin/redis-cli", "-p", std::to_string(redis.port()), "--raw", "KEYS", "*"});
  REQUIRE(cli.wait_exit(10s) == 0);
  std::set<std::string> keys;
  std::istringstream lines(cli.out());
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) keys.insert(line);
  return keys;
}

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view text) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d);
  return hex(d, sizeof d);
}

std::string hmac_sha256_hex(std::string_view key, std::string_view text) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(text.data()),
       text.size(), d, &len);
  return hex(d, len);
}

}  // namespace

TEST_CASE("instances sharing a Redis store enforce one budget: the limit-th request passes and the next is refused, "
          "whichever instance gets it",
          "[integration][middleware]") {
  GATEWAY_REQUIRE_AVAILABLE(test::redis_server::available(), "redis-server (Debian package redis-server) is missing");
  test::redis_server redis;
  REQUIRE(redis.start());
  // A generous timeout: this test is about exactness, not the fallback.
  const std::vector<std::string> common{"--threads",          "2",         "--rate-limit", "10/min",
                                        "--rate-limit-store", redis.url(), "--rate-limit-store-timeout", "2s"};
  auto a = start_gateway(common);
  auto b = start_gateway(common);
  REQUIRE(store_ready(a.port, 4));
  REQUIRE(store_ready(b.port, 4));

  // One client, its requests alternating between the instances.
  std::vector<int> statuses;
  std::vector<std::string> left;
  for (int i = 0; i < 14; ++i) {
    std::string remaining;
    statuses.push_back(status_of(i % 2 == 0 ? a.port : b.port, "127.0.0.1", &remaining));
    left.push_back(remaining);
  }
  for (int i = 0; i < 14; ++i) {
    INFO("request " << i + 1);
    CHECK(statuses[i] == (i < 10 ? 200 : 429));
    CHECK(left[i] == std::to_string(i < 10 ? 9 - i : 0));
  }
  // Another client address has its own budget, on both.
  CHECK(status_of(a.port, "127.0.0.2") == 200);
  std::string remaining;
  CHECK(status_of(b.port, "127.0.0.2", &remaining) == 200);
  CHECK(remaining == "8");
  // Every decision came from the store, none from a fallback.
  const long long checks = test::counter(a.port, "rate_limit_store_checks") + test::counter(b.port, "rate_limit_store_checks");
  CHECK(checks == 16);
  CHECK(test::counter(a.port, "rate_limit_store_fallbacks") == 0);
  CHECK(test::counter(b.port, "rate_limit_store_fallbacks") == 0);
  CHECK(test::gauge(a.port, "rate_limit_store_up") == 1);

  for (auto* g : {&a, &b}) {
    g->proc->signal(SIGTERM);
    CHECK(g->proc->wait_exit(10s) == 0);
  }
  // Exactly one state line each: reachable, never unreachable (a shutdown is not an outage).
  CHECK(a.proc->err().find("unreachable") == std::string::npos);
  redis.kill();
}

TEST_CASE("the store's window slides: no 4 of 3/600ms within a window, the budget comes back as requests leave it, "
          "and the client's hash keeps only its counted buckets",
          "[integration][middleware]") {
  GATEWAY_REQUIRE_AVAILABLE(test::redis_server::available(), "redis-server (Debian package redis-server) is missing");
  test::redis_server redis;
  REQUIRE(redis.start());
  // A 600 ms window: buckets of 10 ms.
  auto gw = start_gateway({"--threads", "1", "--rate-limit", "3/600ms", "--rate-limit-store", redis.url(),
                           "--rate-limit-store-timeout", "2s"});
  REQUIRE(store_ready(gw.port, 2));
  using clock = std::chrono::steady_clock;
  struct pass {
    clock::time_point sent, received;
    std::string remaining;
  };
  std::vector<pass> passed;
  int refused = 0;
  const auto start = clock::now();
  // A request every millisecond or so for 3 s: five windows, whatever the
  // machine's speed (without the pause a fast machine sends thousands in
  // the first window alone).
  for (int i = 0; i < 3000 && clock::now() - start < 3s; ++i) {
    std::this_thread::sleep_for(1ms);
    std::string remaining;
    const auto sent = clock::now();
    const int status = status_of(gw.port, "127.0.0.1", &remaining);
    REQUIRE((status == 200 || status == 429));
    if (status == 200) passed.push_back({sent, clock::now(), remaining});
    else ++refused;
  }
  REQUIRE(passed.size() >= 3);
  CHECK(passed[0].remaining == "2");
  CHECK(passed[1].remaining == "1");
  CHECK(passed[2].remaining == "0");
  // Redis counted each request between its send and its answer; four
  // allowed within one window would break the promise.
  for (std::size_t i = 0; i + 3 < passed.size(); ++i) {
    INFO("allowed requests " << i << " and " << i + 3);
    CHECK(passed[i + 3].received - passed[i].sent >= 600ms);
  }
  // The budget comes back: 3 s of asking gets more than one window's worth.
  CHECK(passed.size() >= 6);
  CHECK(refused > 0);

  // The hash: "s" is the sum of its bucket fields, "f" the oldest of them,
  // and buckets that left the window are gone (at most 61 remain).
  test::child_process cli({"/usr/bin/redis-cli", "-p", std::to_string(redis.port()), "HGETALL",
                           "rl:600000:127.0.0.1"});
  REQUIRE(cli.wait_exit(10s) == 0);
  std::vector<std::string> lines;
  for (std::size_t p = 0, q; p < cli.out().size(); p = q + 1) {
    q = cli.out().find('\n', p);
    if (q == std::string::npos) q = cli.out().size();
    if (q > p) lines.push_back(cli.out().substr(p, q - p));
  }
  REQUIRE(lines.size() % 2 == 0);
  long long sum = 0, s_field = -1, f_field = -1, oldest = -1;
  std::size_t buckets = 0;
  for (std::size_t i = 0; i < lines.size(); i += 2) {
    const long long v = std::stoll(lines[i + 1]);
    if (lines[i] == "s") s_field = v;
    else if (lines[i] == "f") f_field = v;
    else {
      sum += v;
      ++buckets;
      const long long b = std::stoll(lines[i]);
      if (oldest < 0 || b < oldest) oldest = b;
    }
  }
  INFO(cli.out());
  CHECK(s_field == sum);
  CHECK(f_field == oldest);
  CHECK(buckets <= 61);
  CHECK(sum <= 3);
  CHECK(test::counter(gw.port, "rate_limit_store_fallbacks") == 0);
  gw.proc->signal(SIGTERM);
  CHECK(gw.proc->wait_exit(10s) == 0);
  redis.kill();
}

TEST_CASE("a busy client's requests are allowed from slices without a round trip each, Redis counts every one, and "
          "the last requests before the limit are still decided one by one",
          "[integration][middleware]") {
  GATEWAY_REQUIRE_AVAILABLE(test::redis_server::available(), "redis-server (Debian package redis-server) is missing");
  test::redis_server redis;
  REQUIRE(redis.start());
  // 5,000 a minute: slices (up to 32) while at least 64 x the slice is
  // left, single requests for the last ~2,048.
  auto gw = start_gateway({"--threads", "2", "--rate-limit", "5000/min", "--rate-limit-store", redis.url(),
                           "--rate-limit-store-timeout", "2s"});
  REQUIRE(store_ready(gw.port, 4));
  // Four keep-alive connections from one client, taking turns.
  std::vector<std::unique_ptr<test::raw_client>> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(std::make_unique<test::raw_client>(gw.port, 5000ms));
  int allowed = 0, refused = 0;
  for (int i = 0; i < 5200; ++i) {
    auto& c = *clients[static_cast<std::size_t>(i) % clients.size()];
    REQUIRE(c.send(get("/health")));
    auto r = c.read_response();
    REQUIRE(r);
    REQUIRE((r->status == 200 || r->status == 429));
    (r->status == 200 ? allowed : refused) += 1;
  }
  const long long round_trips = test::counter(gw.port, "rate_limit_store_checks");
  const long long slice_hits = test::counter(gw.port, "rate_limit_store_slice_hits");
  const long long counted = counted_in_redis(redis, "rl:60000000:127.0.0.1");
  INFO("allowed " << allowed << ", refused " << refused << ", round trips " << round_trips << ", from slices "
                  << slice_hits << ", counted in Redis " << counted);
  // Never more than the limit; at most one slice per worker unused (the
  // rest of a slice lapses a bucket after its grant).
  CHECK(allowed <= 5000);
  CHECK(allowed >= 5000 - 2 * 31);
  CHECK(counted == 5000);
  // Far fewer round trips than requests: ~3,000 went in slices of up to 32.
  CHECK(slice_hits >= 2000);
  CHECK(round_trips + slice_hits == 5200);
  CHECK(test::counter(gw.port, "rate_limit_store_fallbacks") == 0);
  gw.proc->signal(SIGTERM);
  CHECK(gw.proc->wait_exit(10s) == 0);
  redis.kill();
}

TEST_CASE("Redis killed and restarted under load, failure mode open: no request waits past the budget or fails, the "
          "instance counts in its own table meanwhile and shares again once Redis is back",
          "[integration][middleware]") {
  GATEWAY_REQUIRE_AVAILABLE(test::redis_server::available(), "redis-server (Debian package redis-server) is missing");
  test::redis_server redis;
  REQUIRE(redis.start());
  auto gw = start_gateway({"--threads", "2", "--rate-limit", "1000000/min", "--rate-limit-store", redis.url(),
                           "--rate-limit-store-timeout", "50ms"});
  REQUIRE(store_ready(gw.port, 4));

  // Four clients in a bounded loop (count and time), each on a keep-alive
  // connection (a new one if the gateway closed it).
  std::atomic<bool> stop{false};
  std::atomic<long long> ok{0}, failed{0}, other{0};
  std::atomic<long long> slowest_us{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      const std::string ip = "127.0.0." + std::to_string(30 + t);
      const auto end = std::chrono::steady_clock::now() + 60s;
      std::unique_ptr<test::raw_client> c;
      for (int i = 0; i < 200000 && !stop && std::chrono::steady_clock::now() < end; ++i) {
        try {
          if (!c) c = std::make_unique<test::raw_client>(gw.port, 5000ms, ip.c_str());
          const auto t0 = std::chrono::steady_clock::now();
          auto r = c->send(get("/health")) ? c->read_response() : std::nullopt;
          const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
          long long prev = slowest_us.load();
          while (us > prev && !slowest_us.compare_exchange_weak(prev, us)) {
          }
          if (!r) {
            ++failed;
            c.reset();
          } else if (r->status == 200) {
            ++ok;
          } else {
            ++other;
          }
        } catch (const std::exception&) {
          ++failed;
          c.reset();
        }
      }
    });
  }
  auto counter = [&](const char* name) { return test::counter(gw.port, name); };
  CHECK(test::wait_until([&] { return counter("rate_limit_store_checks") > 200; }, 20s));
  redis.kill();
  CHECK(gw.proc->wait_for_line("unreachable", true, 10s));
  const long long fallbacks_at_down = counter("rate_limit_store_fallbacks");
  CHECK(test::wait_until([&] { return counter("rate_limit_store_fallbacks") > fallbacks_at_down + 200; }, 20s));
  REQUIRE(redis.restart());
  CHECK(gw.proc->wait_for_count("reachable: every instance", 2, true, 10s));
  const long long checks_at_up = counter("rate_limit_store_checks");
  CHECK(test::wait_until([&] { return counter("rate_limit_store_checks") > checks_at_up + 200; }, 20s));
  stop = true;
  for (auto& t : clients) t.join();

  CHECK(failed == 0);
  CHECK(other == 0);
  CHECK(ok > 600);
  // "No hang": the slowest request of the whole run, Redis killed and back
  // included, on a shared machine; the budget itself is 50 ms.
  CHECK(slowest_us < 2'000'000);
  // One line per change of state: up, down, up.
  const std::string& err = gw.proc->err();
  auto count = [&](std::string_view needle) {
    std::size_t n = 0;
    for (auto p = err.find(needle); p != std::string::npos; p = err.find(needle, p + 1)) ++n;
    return n;
  };
  CHECK(count("unreachable: each instance counts in its own table") == 1);
  CHECK(count("reachable: every instance") == 2);
  CHECK(counter("rate_limit_store_state_changes") == 3);
  // Every connection is made again (each waits out its own back-off).
  CHECK(store_ready(gw.port, 4));
  CHECK(counter("rate_limit_store_connects") >= 8);
  gw.proc->signal(SIGTERM);
  CHECK(gw.proc->wait_exit(10s) == 0);
  redis.kill();
}

TEST_CASE("failure mode closed: a stopped Redis costs a request at most the budget and a 503, a killed one a 503 at "
          "once, and limits are shared again when it is back",
          "[integration][middleware]") {
  GATEWAY_REQUIRE_AVAILABLE(test::redis_server::available(), "redis-server (Debian package redis-server) is missing");
  test::redis_server redis;
  REQUIRE(redis.start());
  auto gw = start_gateway({"--threads", "1", "--rate-limit", "1000/min", "--rate-limit-store", redis.url(),
                           "--rate-limit-store-timeout", "30ms", "--rate-limit-store-failure", "closed"});
  REQUIRE(store_ready(gw.port, 2));
  CHECK(status_of(gw.port, "127.0.0.1") == 200);

  // Slow: the process is stopped, its connections stay open.
  redis.signal(SIGSTOP);
  for (int i = 0; i < 20; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    test::raw_client c(gw.port, 5000ms);
    REQUIRE(c.send(get("/health")));
    auto r = c.read_response();
    REQUIRE(r);
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO("request " << i);
    CHECK(r->status == 503);
    CHECK(r->header("Retry-After") == "1");
    CHECK(took < 1s);  // the budget is 30 ms; the rest is the shared machine
  }
  CHECK(test::counter(gw.port, "rate_limit_store_unavailable") == 20);
  CHECK(test::counter(gw.port, "rate_limit_store_timeouts") >= 1);
  redis.signal(SIGCONT);
  CHECK(test::wait_until([&] { return status_of(gw.port, "127.0.0.1") == 200; }, 10s));

  // Gone: refused at once, no wait for Redis.
  redis.kill();
  CHECK(test::wait_until([&] { return status_of(gw.port, "127.0.0.1") == 503; }, 10s));
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(status_of(gw.port, "127.0.0.1") == 503);
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  CHECK(gw.proc->wait_for_line("unreachable: rate-limited routes answer 503", true, 10s));
  REQUIRE(redis.restart());
  CHECK(test::wait_until([&] { return status_of(gw.port, "127.0.0.1") == 200; }, 10s));
  gw.proc->signal(SIGTERM);
  CHECK(gw.proc->wait_exit(10s) == 0);
  redis.kill();
}

TEST_CASE("a store host that cannot be resolved is refused at start-up: exit 2 naming the flag",
          "[integration][middleware]") {
  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0",
                          "--rate-limit-store", "redis://no-such-host.invalid:6379"});
  CHECK(gw.wait_exit(10s) == 2);
  INFO(gw.err());
  CHECK(gw.err().find("--rate-limit-store") != std::string::npos);
  CHECK(gw.err().find("no-such-host.invalid") != std::string::npos);
}

TEST_CASE("rate limit by API key with a Redis store: every spelling of a key spends that key's one budget, other "
          "keys the address's",
          "[integration][middleware]") {
  GATEWAY_REQUIRE_AVAILABLE(test::redis_server::available(), "redis-server (Debian package redis-server) is missing");
  test::redis_server redis;
  REQUIRE(redis.start());
  auto g = start_gateway({"--threads", "2", "--rate-limit", "3/min", "--rate-limit-key", "api-key", "--api-key",
                          "secretkey1234", "--rate-limit-store", redis.url(), "--rate-limit-store-timeout", "2s"});
  REQUIRE(store_ready(g.port, 4));
  const auto status = [&](const std::string& target, std::string_view extra = {}) {
    test::raw_client c(g.port);
    if (!c.send(get(target, extra))) return -1;
    auto r = c.read_response();
    return r ? r->status : -1;
  };
  for (int i = 0; i < 3; ++i) CHECK(status("/health?api_key=secretkey1234") == 200);
  for (const char* spelling : {"secretkey1234", "%73ecretkey1234", "s%65cretkey1234", "secretkey%31234"}) {
    INFO(spelling);
    CHECK(status(std::string("/health?api_key=") + spelling) == 429);
  }
  CHECK(status("/health", "X-API-Key: secretkey1234\r\n") == 429);
  // Keys that are not configured count under the client's address, a
  // budget of 3 like any other, not one each.
  for (const char* guess : {"guess1", "guess2", "guess3"}) {
    INFO(guess);
    CHECK(status("/health", std::string("X-API-Key: ") + guess + "\r\n") == 200);
  }
  CHECK(status("/health", "X-API-Key: guess4\r\n") == 429);
  CHECK(status("/health?api_key=guess5") == 429);
  CHECK(status("/health") == 429);
  CHECK(test::counter(g.port, "rate_limit_store_fallbacks") == 0);
  // Redis holds two clients: the key, by its plain SHA-256 (no
  // --rate-limit-store-secret, which the start-up warns about), and the
  // address.
  CHECK(redis_keys(redis) ==
        std::set<std::string>{"rl:60000000:127.0.0.1", "rl:60000000:k:" + sha256_hex("secretkey1234")});
  // Read on until the line (err() holds only what was read while waiting
  // for "listening on", and the warning follows it).
  CHECK(g.proc->wait_for_line("WARNING: --rate-limit-key api-key without --rate-limit-store-secret", true, 5s));

  g.proc->signal(SIGTERM);
  CHECK(g.proc->wait_exit(10s) == 0);
  redis.kill();
}

TEST_CASE("with --rate-limit-store-secret Redis names an API key by its HMAC-SHA-256, the same on every instance, "
          "and a short secret stops the gateway with exit 2",
          "[integration][middleware]") {
  GATEWAY_REQUIRE_AVAILABLE(test::redis_server::available(), "redis-server (Debian package redis-server) is missing");
  test::redis_server redis;
  REQUIRE(redis.start());
  const std::string secret = "a-secret-the-instances-share";
  const std::vector<std::string> common{"--threads", "1", "--rate-limit", "3/min", "--rate-limit-key", "api-key",
                                        "--api-key", "secretkey1234", "--rate-limit-store", redis.url(),
                                        "--rate-limit-store-timeout", "2s", "--rate-limit-store-secret", secret};
  auto a = start_gateway(common);
  auto b = start_gateway(common);
  REQUIRE(store_ready(a.port, 2));
  REQUIRE(store_ready(b.port, 2));
  const auto status = [](std::uint16_t port) {
    test::raw_client c(port);
    if (!c.send(get("/health", "X-API-Key: secretkey1234\r\n"))) return -1;
    auto r = c.read_response();
    return r ? r->status : -1;
  };
  // One budget across the instances: both name the key alike.
  CHECK(status(a.port) == 200);
  CHECK(status(b.port) == 200);
  CHECK(status(a.port) == 200);
  CHECK(status(b.port) == 429);
  CHECK(status(a.port) == 429);
  const std::string expected = "rl:60000000:h:" + hmac_sha256_hex(secret, "secretkey1234");
  CHECK(redis_keys(redis) == std::set<std::string>{expected});
  // No warning: read up to the start-up line that follows where it would be.
  REQUIRE(a.proc->wait_for_line("and  curl", true, 5s));
  CHECK(a.proc->err().find("WARNING: --rate-limit-key api-key") == std::string::npos);
  for (auto* g : {&a, &b}) {
    g->proc->signal(SIGTERM);
    CHECK(g->proc->wait_exit(10s) == 0);
  }
  redis.kill();

  test::child_process bad({std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0",
                           "--rate-limit-store-secret", "too-short"});
  CHECK(bad.wait_exit(10s) == 2);
  CHECK(bad.err().find("--rate-limit-store-secret") != std::string::npos);
  CHECK(bad.err().find("at least 16 bytes") != std::string::npos);
}
