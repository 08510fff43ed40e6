#pragma once
// The gateway's settings: built once at start-up from flags (and later a
// config file), then read-only. Every tunable is here, none is a macro.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gateway::core {

using namespace std::chrono_literals;

struct listen_address {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
};

struct config {
  listen_address listen;
  std::string backend;  // "http://host:port" or empty: the embedded demo backend
  unsigned threads = 0;  // 0: one per core

  // Request limits (RFC 9110 section 15.5.14, RFC 6585 section 5).
  std::uint64_t max_body = 10ull * 1024 * 1024;
  std::uint64_t max_head = 16 * 1024;
  std::uint32_t max_headers = 100;

  std::chrono::nanoseconds header_timeout = 10s;  // first byte to end of head
  std::chrono::nanoseconds body_timeout = 30s;    // between body reads
  std::chrono::nanoseconds idle_timeout = 60s;    // keep-alive wait for the next request
  std::chrono::nanoseconds write_timeout = 30s;   // a stalled client reader
  std::chrono::nanoseconds drain_timeout = 5s;    // in-flight requests at shutdown

  // Upstream (proxy) settings.
  std::chrono::nanoseconds upstream_connect_timeout = 2s;
  std::chrono::nanoseconds upstream_timeout = 30s;       // request sent -> response head received (504 after)
  std::chrono::nanoseconds upstream_idle_timeout = 30s;  // pooled keep-alive connection kept this long
  std::uint32_t upstream_max_idle = 64;                   // idle pooled connections per worker
};

struct parse_outcome {
  enum class action { run, help, version, error } what = action::run;
  std::string message;  // the error, naming the flag
};

// Parses argv into `out`. Unknown flags and bad values are errors that name
// the flag. Does not print.
parse_outcome parse_args(int argc, const char* const* argv, config& out);

// The --help text, generated from the same table parse_args uses.
std::string help_text();

}  // namespace gateway::core
