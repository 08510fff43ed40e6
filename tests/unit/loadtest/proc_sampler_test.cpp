#include "loadtest/src/proc_sampler.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

TEST_CASE("sampler reads VmRSS in bytes from a status text", "[unit][loadtest]") {
  const std::string status = "\nName:\tgateway\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n";
  CHECK(loadtest::parse_vm_rss_bytes(status) == 12345u * 1024);
  CHECK(!loadtest::parse_vm_rss_bytes("\nName:\tzombie\nState:\tZ\n"));
  CHECK(!loadtest::parse_vm_rss_bytes("\nVmRSS:\t 12 MB\n"));
}

TEST_CASE("sampler adds utime and stime from a stat line whose name holds spaces and parentheses",
          "[unit][loadtest]") {
  // Fields: pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime ...
  const std::string stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1000\n";
  CHECK(loadtest::parse_cpu_ticks(stat) == 325u);
  CHECK(!loadtest::parse_cpu_ticks("4242 (short) S 1 2"));
  CHECK(!loadtest::parse_cpu_ticks("no parenthesis at all"));
}

TEST_CASE("sampler parses this process's own /proc files", "[unit][loadtest]") {
  const auto slurp = [](const char* path) {
    std::ifstream in(path);
    std::ostringstream ss;
    ss << '\n' << in.rdbuf();  // not "\n" + str(): g++ 12's false -Wrestrict on that
    return ss.str();
  };
  const auto rss = loadtest::parse_vm_rss_bytes(slurp("/proc/self/status"));
  REQUIRE(rss.has_value());
  CHECK(*rss > 100u * 1024);
  CHECK(loadtest::parse_cpu_ticks(slurp("/proc/self/stat")).has_value());
}
