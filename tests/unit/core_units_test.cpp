#include "gateway/core/units.hpp"

#include <catch2/catch.hpp>

#include "gateway/core/arena.hpp"
#include "gateway/core/config.hpp"
#include "gateway/core/config_file.hpp"

using namespace gateway::core;
using namespace std::chrono_literals;

TEST_CASE("durations parse with units and refuse garbage", "[unit][core]") {
  CHECK(parse_duration("5s") == std::chrono::nanoseconds(5s));
  CHECK(parse_duration("500ms") == std::chrono::nanoseconds(500ms));
  CHECK(parse_duration("2m") == std::chrono::nanoseconds(120s));
  CHECK(parse_duration("1.5s") == std::chrono::nanoseconds(1500ms));
  CHECK(parse_duration("7") == std::chrono::nanoseconds(7s));
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration("5 parsecs"));
  CHECK_FALSE(parse_duration("s"));
}

TEST_CASE("sizes parse binary and decimal units", "[unit][core]") {
  CHECK(parse_size("10MiB") == 10u * 1024 * 1024);
  CHECK(parse_size("512KiB") == 512u * 1024);
  CHECK(parse_size("1k") == 1024u);
  CHECK(parse_size("10MB") == 10'000'000u);
  CHECK(parse_size("4096") == 4096u);
  CHECK_FALSE(parse_size("ten"));
  CHECK_FALSE(parse_size("10XB"));
  CHECK(format_size(10u * 1024 * 1024) == "10MiB");
}

TEST_CASE("flags are parsed and bad values name the flag", "[unit][core]") {
  config c;
  const char* ok[] = {"gateway", "--listen", "127.0.0.1:9000", "--max-body=1MiB", "--threads", "3",
                      "--header-timeout", "250ms"};
  auto r = parse_args(8, ok, c);
  CHECK(r.what == parse_outcome::action::run);
  CHECK(c.listen.port == 9000);
  CHECK(c.max_body == 1024u * 1024);
  CHECK(c.threads == 3);
  CHECK(c.header_timeout == std::chrono::nanoseconds(250ms));

  const char* bad_port[] = {"gateway", "--listen", "127.0.0.1:99999"};
  auto e1 = parse_args(3, bad_port, c);
  CHECK(e1.what == parse_outcome::action::error);
  CHECK(e1.message.find("--listen") != std::string::npos);

  const char* bad_dur[] = {"gateway", "--idle-timeout", "forever"};
  auto e2 = parse_args(3, bad_dur, c);
  CHECK(e2.what == parse_outcome::action::error);
  CHECK(e2.message.find("--idle-timeout") != std::string::npos);

  const char* unknown[] = {"gateway", "--frobnicate"};
  auto e3 = parse_args(2, unknown, c);
  CHECK(e3.what == parse_outcome::action::error);
  CHECK(e3.message.find("--frobnicate") != std::string::npos);

  const char* missing[] = {"gateway", "--backend"};
  CHECK(parse_args(2, missing, c).what == parse_outcome::action::error);

  const char* help[] = {"gateway", "--help"};
  CHECK(parse_args(2, help, c).what == parse_outcome::action::help);
  auto text = help_text();
  for (const char* flag : {"--listen", "--backend", "--threads", "--max-body", "--header-timeout", "--idle-timeout",
                           "--drain-timeout", "--help", "--version"})
    CHECK(text.find(flag) != std::string::npos);
}

TEST_CASE("the rate-limit-exempt flag takes exact paths, repeatable, and the config file's list", "[unit][core]") {
  config c;
  const char* ok[] = {"gateway", "--rate-limit-exempt", "/health", "--rate-limit-exempt=/metrics"};
  REQUIRE(parse_args(4, ok, c).what == parse_outcome::action::run);
  CHECK(c.rate_limit_exempt == std::vector<std::string>{"/health", "/metrics"});
  for (const char* bad : {"health", "", "/health?x=1"}) {
    config b;
    const char* argv[] = {"gateway", "--rate-limit-exempt", bad};
    auto r = parse_args(3, argv, b);
    CHECK(r.what == parse_outcome::action::error);
    CHECK(r.message.find("--rate-limit-exempt") != std::string::npos);
  }
  config f;
  std::string err;
  REQUIRE(apply_config_text("{\"rate_limit_exempt\": [\"/health\", \"/ready\"]}", "c.json", f, err));
  CHECK(f.rate_limit_exempt == std::vector<std::string>{"/health", "/ready"});
  CHECK_FALSE(apply_config_text("{\"rate_limit_exempt\": [\"ready\"]}", "c.json", f, err));
  CHECK(err.find("'rate_limit_exempt'") != std::string::npos);
  // --help says what it does, and that every route is limited otherwise.
  const std::string text = help_text();
  CHECK(text.find("--rate-limit-exempt PATH") != std::string::npos);
  CHECK(text.find("/health and /metrics included") != std::string::npos);
}

TEST_CASE("the arena reuses its first block and releases the rest on reset", "[unit][core]") {
  arena a(1024);
  void* p1 = a.allocate(100);
  a.reset();
  void* p2 = a.allocate(100);
  CHECK(p1 == p2);  // first block kept
  CHECK(a.extra_bytes() == 0);
  a.allocate(1u << 20);
  CHECK(a.extra_bytes() >= (1u << 20));
  a.reset();
  CHECK(a.extra_bytes() == 0);
  CHECK(a.bytes_used() == 0);

  // grow() extends the last allocation in place when it can.
  char* g = static_cast<char*>(a.allocate(10, 1));
  std::memcpy(g, "0123456789", 10);
  char* g2 = a.grow(g, 10, 20);
  CHECK(g2 == g);
  char* g3 = a.grow(g2, 20, 64 * 1024);
  CHECK(std::string_view(g3, 10) == "0123456789");

  // Destructors of arena objects run at reset.
  int destroyed = 0;
  struct probe {
    int* counter;
    ~probe() { ++*counter; }
  };
  a.make<probe>(probe{&destroyed});
  a.make<probe>(probe{&destroyed});
  int temporaries = destroyed;  // the two probe{} arguments
  a.reset();
  CHECK(destroyed == temporaries + 2);
}

TEST_CASE("a body-sized arena allocation gets its own block and small ones stay in the current block",
          "[unit][core]") {
  arena a(8 * 1024);
  char* small1 = static_cast<char*>(a.allocate(512, 1));
  char* big = static_cast<char*>(a.allocate(32 * 1024, 1));
  const std::size_t after_big = a.extra_bytes();
  CHECK(after_big >= 32 * 1024);
  CHECK(after_big < 33 * 1024);  // exactly its own block, no spare
  std::memset(big, 'x', 32 * 1024);  // usable in full (ASan checks the bounds)
  // The first block still serves small allocations: no fresh 16 KiB block.
  char* small2 = static_cast<char*>(a.allocate(1024, 1));
  CHECK(a.extra_bytes() == after_big);
  CHECK(small2 >= small1 + 512);
  CHECK(small2 < small1 + 8 * 1024);
  CHECK((big + 32 * 1024 <= small1 || big >= small1 + 8 * 1024));  // no overlap
  CHECK(a.bytes_used() == 512 + 32 * 1024 + 1024);
  a.reset();
  CHECK(a.extra_bytes() == 0);
}

TEST_CASE("an arena on a block pool gives its first block back when released and takes it again",
          "[unit][core]") {
  block_pool pool(arena::default_first_block, 2);
  arena a(pool);
  CHECK_FALSE(a.holds_first_block());
  void* p1 = a.allocate(100);
  CHECK(a.holds_first_block());
  CHECK(pool.size() == 0);
  a.release_first();
  CHECK_FALSE(a.holds_first_block());
  CHECK(pool.size() == 1);
  void* p2 = a.allocate(100);  // the same block, from the pool, not malloc
  CHECK(p2 == p1);
  CHECK(pool.size() == 0);

  // The pool keeps at most its cap; trim() empties it.
  arena b(pool), c(pool), d(pool);
  b.allocate(1);
  c.allocate(1);
  d.allocate(1);
  b.release_first();
  c.release_first();
  d.release_first();
  CHECK(pool.size() == 2);
  pool.trim();
  CHECK(pool.size() == 0);
  // An arena gone with its block gives it back too.
  {
    arena e(pool);
    e.allocate(1);
  }
  CHECK(pool.size() == 1);
}
