#pragma once
// A test whose data or tool is missing FAILS, naming what is missing and how
// to get it: no machine passes by skipping. scripts/test.sh installs the
// tools (scripts/deps.sh); the data lives in ../shared.
#include <catch2/catch.hpp>

// Requires `available`; otherwise fails the test with `what`.
#define GATEWAY_REQUIRE_AVAILABLE(available, what) \
  do {                                             \
    if (!(available)) FAIL(what);                  \
  } while (0)
