#include "gateway/middleware/access_log.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <thread>

using namespace gateway::middleware;

namespace {
log_entry_view sample_entry() {
  log_entry_view e;
  e.timestamp = std::chrono::system_clock::now();
  e.method = "GET";
  e.path = "/api/x?api_key=secret&y=1";
  e.status = 201;
  e.duration = std::chrono::microseconds(1500);
  e.client = "10.0.0.7";
  e.request_id = "rid-1";
  return e;
}
}  // namespace

TEST_CASE("access log lines carry the request and never the api_key", "[unit][middleware][logging]") {
  auto e = sample_entry();
  std::string text, json, pretty;
  access_log::format_line(access_log_format::text, access_log_line{&e, "127.0.0.1:9000"}, text);
  CHECK(text.find(" 201 GET /api/x?api_key=[REDACTED]&y=1 1.500ms 10.0.0.7 -> 127.0.0.1:9000 id=rid-1\n") != std::string::npos);
  CHECK(text.find("secret") == std::string::npos);
  access_log::format_line(access_log_format::json, access_log_line{&e, "127.0.0.1:9000"}, json);
  CHECK(json.find("\"status\":201") != std::string::npos);
  CHECK(json.find("\"path\":\"/api/x?api_key=[REDACTED]&y=1\"") != std::string::npos);
  CHECK(json.back() == '\n');
  access_log::format_line(access_log_format::pretty, access_log_line{&e, "127.0.0.1:9000"}, pretty);
  CHECK(pretty.find("\x1b[32m201\x1b[0m") != std::string::npos);
}

TEST_CASE("a stalled access-log reader makes lines drop and count, never blocks the writer of requests",
          "[unit][middleware][logging]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::FILE* out = ::fdopen(fds[1], "w");
  REQUIRE(out != nullptr);
  std::uint64_t written = 0, dropped = 0;
  {
    access_log log(access_log_format::text, out, 4096);
    auto e = sample_entry();
    // Nobody reads the pipe: its 64 KiB fill up, the writer thread blocks,
    // the 4 KiB buffer fills, and from then on lines are dropped.
    for (int i = 0; i < 20000; ++i) log.write(access_log_line{&e, {}});
    written = log.written();
    dropped = log.dropped();
    CHECK(dropped > 0);
    CHECK(written + dropped == 20000);
    // Drain the pipe so the writer can finish and the destructor can join it.
    std::thread reader([fd = fds[0]] {
      char buf[65536];
      while (::read(fd, buf, sizeof buf) > 0) {
      }
    });
    reader.detach();
  }
  std::fclose(out);
  INFO("written " << written << ", dropped " << dropped);
  CHECK(written < 20000);
}
