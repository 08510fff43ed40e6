#include "gateway/core/config.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace gateway::core;
using namespace std::chrono_literals;

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
