#pragma once
// Prints a figure a test measured (RSS per connection, a gate's readings, a
// retried run's load) on standard error, whether the test passes or fails,
// with the file and line it comes from. It asserts nothing and records
// nothing in Catch2's results: the CHECKs and REQUIREs beside it do.
#include <iostream>
#include <sstream>

#define GATEWAY_REPORT(message)                                                                    \
  do {                                                                                             \
    std::ostringstream gateway_report_text;                                                        \
    gateway_report_text << message;                                                                \
    std::cerr << __FILE__ << ":" << __LINE__ << ": figure: " << gateway_report_text.str() << '\n'; \
  } while (0)
