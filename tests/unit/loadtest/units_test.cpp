// loadtest reads sizes and durations with the gateway's own parser
// (gateway/core/units.hpp), so "--body-size 1k" and "--max-body 1k" mean the
// same number of bytes; before, loadtest took "1k" as 1,000 and the gateway
// as 1,024.
#include "loadtest/src/options.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "gateway/core/units.hpp"

using namespace std::chrono_literals;

TEST_CASE("loadtest sizes are the gateway's sizes", "[unit][loadtest]") {
  for (const char* text : {"0", "4096", "1k", "1K", "1KiB", "1kib", "1KB", "1kB", "1.5KiB", "10m", "10M", "10MiB",
                           "10MB", "1g", "1GiB", "1GB", "512 KiB", "7b", "7B"}) {
    INFO(text);
    const auto ours = loadtest::parse_size(text);
    REQUIRE(ours);
    CHECK(ours == gateway::core::parse_size(text));
  }
  CHECK(loadtest::parse_size("1k") == 1024u);
  CHECK(loadtest::parse_size("1KB") == 1000u);
  CHECK(loadtest::parse_size("10MiB") == 10u * 1024 * 1024);
  // Scenario values and command-line arguments may carry blanks around them.
  CHECK(loadtest::parse_size(" 16KiB\t") == 16u * 1024);
  for (const char* bad : {"", " ", "ten", "-1", "1XB", "KiB", "1 K i B", "1e3", "+5"}) {
    INFO(bad);
    CHECK_FALSE(loadtest::parse_size(bad));
  }
}

TEST_CASE("loadtest durations are the gateway's durations", "[unit][loadtest]") {
  for (const char* text : {"10", "10s", "500ms", "250us", "100ns", "2m", "1min", "1h", "1.5s", "0.25ms"}) {
    INFO(text);
    const auto ours = loadtest::parse_duration(text);
    REQUIRE(ours);
    CHECK(ours == gateway::core::parse_duration(text));
  }
  CHECK(loadtest::parse_duration("1.5s") == std::chrono::nanoseconds(1500ms));
  CHECK(loadtest::parse_duration(" 30s ") == std::chrono::nanoseconds(30s));
  for (const char* bad : {"", "-1s", "5 parsecs", "s", "1d", "1e3s"}) {
    INFO(bad);
    CHECK_FALSE(loadtest::parse_duration(bad));
  }
}

TEST_CASE("scenario files and the command line read sizes and durations with the shared parser",
          "[unit][loadtest]") {
  loadtest::loadtest_options o;
  REQUIRE_FALSE(loadtest::apply_scenario_text("url = http://127.0.0.1:1/\n"
                                              "duration = 1500ms\n"
                                              "warmup = 0.5s\n"
                                              "request = 1 POST /up body=1k\n"
                                              "request = 2 POST /up body=2KB gzip\n",
                                              o));
  CHECK(o.duration == std::chrono::nanoseconds(1500ms));
  CHECK(o.warmup == std::chrono::nanoseconds(500ms));
  REQUIRE(o.requests.size() == 2);
  CHECK(o.requests[0].body_size == 1024u);
  CHECK(o.requests[1].body_size == 2000u);

  auto bad = loadtest::apply_scenario_text("request = 1 POST /up body=1XB\n", o);
  REQUIRE(bad);
  CHECK(bad->find("line 1") != std::string::npos);

  std::vector<std::string> args{"loadtest", "--url", "http://127.0.0.1:1/", "--body-size", "1m", "--timeout", "2s"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  loadtest::loadtest_options cli;
  bool help = false;
  REQUIRE_FALSE(loadtest::parse_command_line(static_cast<int>(argv.size()), argv.data(), cli, help));
  REQUIRE(cli.requests.size() == 1);
  CHECK(cli.requests[0].body_size == 1024u * 1024);
  CHECK(cli.requests[0].method == "POST");
  CHECK(cli.timeout == std::chrono::nanoseconds(2s));
}
