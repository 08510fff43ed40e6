#include "gateway/core/units.hpp"

#include <catch2/catch.hpp>

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

TEST_CASE("durations format in the largest unit that keeps them whole, hours included", "[unit][core]") {
  CHECK(format_duration(12h) == "12h");
  CHECK(format_duration(1h) == "1h");
  CHECK(format_duration(90min) == "5400s");
  CHECK(format_duration(60s) == "60s");
  CHECK(format_duration(250ms) == "250ms");
  CHECK(format_duration(std::chrono::nanoseconds(0)) == "0s");
  CHECK(parse_duration(format_duration(12h)) == std::chrono::nanoseconds(12h));
}

TEST_CASE("sizes parse binary and decimal units", "[unit][core]") {
  CHECK(parse_size("10MiB") == 10u * 1024 * 1024);
  CHECK(parse_size("512KiB") == 512u * 1024);
  CHECK(parse_size("1k") == 1024u);
  CHECK(parse_size("10MB") == 10'000'000u);
  CHECK(parse_size("4096") == 4096u);
  CHECK_FALSE(parse_size("ten"));
  CHECK_FALSE(parse_size("10XB"));
  // Whole bytes only: a fraction of a unit is fine where it makes whole bytes.
  CHECK(parse_size("1.5MiB") == 1536u * 1024);
  CHECK(parse_size("0.3MB") == 300'000u);
  CHECK(parse_size("0.5k") == 512u);
  CHECK_FALSE(parse_size("1.5"));
  CHECK_FALSE(parse_size("0.1KiB"));
  CHECK(format_size(10u * 1024 * 1024) == "10MiB");
}
