// A million distinct clients and paths: the rate-limit table and the
// per-path metric maps stop at their caps and the process's RSS stays flat.
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <thread>

#include "gateway/core/ip_address.hpp"
#include "gateway/json/reader.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// Sends `count` pipelined requests (distinct path, made-up API key and
// X-Forwarded-For client address each) in batches and counts the
// responses; returns how many arrived.
std::size_t blast(std::uint16_t port, std::size_t first, std::size_t count) {
  test::raw_client c(port, 20000ms);
  constexpr std::size_t batch = 500;
  std::string out;
  std::size_t responses = 0;
  std::string carry;
  char buf[1 << 16];
  for (std::size_t done = 0; done < count;) {
    std::size_t n = std::min(batch, count - done);
    out.clear();
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t n_id = first + done + i;
      std::string id = std::to_string(n_id);
      const std::string client = "10." + std::to_string((n_id >> 16) & 255) + "." + std::to_string((n_id >> 8) & 255) +
                                 "." + std::to_string(n_id & 255);
      out += "GET /api/p/" + id + " HTTP/1.1\r\nHost: t\r\nX-API-Key: k" + id + "\r\nX-Forwarded-For: " + client +
             "\r\n\r\n";
    }
    if (!c.send(out)) return responses;
    std::size_t want = responses + n;
    while (responses < want) {
      ssize_t got = ::recv(c.fd(), buf, sizeof buf, 0);
      if (got <= 0) return responses;
      std::string_view chunk(buf, static_cast<std::size_t>(got));
      std::string scan = carry + std::string(chunk);
      for (std::size_t pos = 0; (pos = scan.find("HTTP/1.1 ", pos)) != std::string::npos; pos += 9) ++responses;
      carry = scan.size() > 8 ? scan.substr(scan.size() - 8) : scan;
      // A match straddling the carry boundary must not count twice.
      if (carry.find("HTTP/1.1 ") != std::string::npos) carry.clear();
    }
    done += n;
  }
  return responses;
}

}  // namespace

TEST_CASE("a million distinct clients and paths leave the rate-limit table and path maps at their caps, RSS flat",
          "[integration][middleware]") {
  auto cfg = test::test_config();
  cfg.api_keys = {"the-only-key"};
  // Made-up keys count under the client's address (only configured keys
  // have budgets of their own), so each request names a distinct client
  // address through a trusted proxy's X-Forwarded-For.
  cfg.rate_limit_key = "api-key";
  std::string_view err;
  cfg.trusted_proxies.add(*core::parse_cidr("127.0.0.1/32", err));
  cfg.rate_limit_max_clients = 10000;
  cfg.metrics_max_paths = 1000;
  test::running_server srv(cfg);
  auto& state = srv.app()->state();

  constexpr std::size_t threads = 4, warmup = 100000, total = 1000000;
  auto run = [&](std::size_t from, std::size_t count) {
    std::vector<std::thread> ts;
    std::atomic<std::size_t> got{0};
    for (std::size_t t = 0; t < threads; ++t)
      ts.emplace_back([&, t] { got += blast(srv.port(), from + t * (count / threads), count / threads); });
    for (auto& t : ts) t.join();
    return got.load();
  };
  REQUIRE(run(0, warmup) == warmup);
  std::size_t rss_warm = test::rss_bytes();
  const std::size_t table_bytes = state.current_limiter()->memory_bytes();
  REQUIRE(run(warmup, total - warmup) == total - warmup);
  std::size_t rss_end = test::rss_bytes();

  const auto limiter = state.current_limiter();
  REQUIRE(limiter != nullptr);
  // Full to its cap and no bigger: the table holds as many clients as the
  // flag allows, and evicted the rest instead of growing.
  CHECK(limiter->capacity() <= 10000);
  CHECK(limiter->capacity() >= 9000);
  CHECK(limiter->size() == limiter->capacity());
  CHECK(limiter->evictions() + limiter->expirations() >= total - limiter->capacity());
  CHECK(limiter->memory_bytes() == table_bytes);
  CHECK(state.metrics.tracked_paths() <= 1001);
  auto m = test::http_request(srv.port(), "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(m);
  auto doc = json::parse(m->body);
  REQUIRE(doc);
  CHECK(doc.value().find("requests_by_path")->size() <= 1001);
  CHECK(doc.value().find("total_requests")->as_int64() >= static_cast<std::int64_t>(total));
  INFO("RSS after 100k: " << rss_warm / 1024 << " KiB, after 1M: " << rss_end / 1024 << " KiB");
  if (test::rss_checks_apply) CHECK(rss_end < rss_warm + 8u * 1024 * 1024);
}
