#pragma once
// The access log: one line per request, written to a FILE (stdout) by a
// background std::jthread. Workers format the line on their own thread and
// append it to a bounded buffer under a short lock (a memcpy); they never
// wait for output. When the buffer is full, lines are dropped and counted
// (a slow terminal or pipe must not slow requests or grow memory).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>

#include "gateway/middleware/log_ring.hpp"

namespace gateway::middleware {

enum class access_log_format { off, text, json, pretty };

struct access_log_line {
  const log_entry_view* entry = nullptr;
  std::string_view upstream;  // the backend that served it, or empty
};

class access_log {
 public:
  // `out` is not owned (stdout in the binary, a temp file in tests).
  access_log(access_log_format format, std::FILE* out, std::size_t buffer_bytes = 1 << 20);
  ~access_log();  // flushes what is buffered, joins the writer
  access_log(const access_log&) = delete;
  access_log& operator=(const access_log&) = delete;

  // Any thread. Never blocks on output.
  void write(const access_log_line& line) noexcept;

  access_log_format format() const noexcept { return format_; }
  std::uint64_t written() const noexcept { return written_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

  // Formats one line (with the trailing newline) into `out`. Exposed for tests.
  static void format_line(access_log_format f, const access_log_line& line, std::string& out);

 private:
  void run(std::stop_token st);

  access_log_format format_;
  std::FILE* out_;
  std::size_t cap_;
  std::mutex m_;
  std::condition_variable_any cv_;
  std::string pending_;  // guarded by m_
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::jthread writer_;  // last: started after everything else exists
};

// Parses "off", "text", "json", "pretty"; false for anything else.
bool parse_access_log_format(std::string_view s, access_log_format& out) noexcept;

}  // namespace gateway::middleware
