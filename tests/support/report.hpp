#pragma once
// Prints a figure a test measured (RSS per connection, a gate's readings, a
// retried run's load) in the test's output whether it passes or fails. It
// asserts nothing: the CHECKs and REQUIREs beside it do.
#include <catch2/catch.hpp>

#define GATEWAY_REPORT(message) WARN(message)
