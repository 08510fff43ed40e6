#pragma once
// The load generator's engine: N worker threads, each with its own
// io_context, each running one coroutine per client connection (connections
// are dealt to threads round robin) plus one housekeeping coroutine.
//
// Timeline (fixed at start()): [start, measure_start) warm-up,
// [measure_start, measure_end) measured, then a drain that lasts until the
// requests begun in the measured window have completed, bounded by
// measure_end + timeout (the hard deadline, when every socket is closed).
//
// A request is *measured* when its intended send time lies in the measured
// window. Closed loop: the intended time is the actual send time and a
// connection sends its next request as soon as the previous response is
// complete. Open loop (rate > 0): connection i of C intends to send at
// start + i/rate + k*C/rate for k = 0, 1, ...; if the connection is still busy
// (or reconnecting) at that time the request waits on that connection and its
// latency still counts from the intended time, so a stalled server shows its
// stall (no coordinated omission). Intended requests never sent (the
// connection gave up, or the hard deadline came) are counted as `dropped`.
//
// Errors are counted by kind for measured requests; a connect failure counts
// when it happens inside the measured window. A request that fails on a
// reused keep-alive connection before any response byte arrives (the server
// closed it while idle) is sent once more on a new connection and counted in
// stale_retries, not as an error; its latency still runs from the intended time. After an error the connection
// is closed and reopened, backing off 10 ms doubling to 1 s; after
// max_reconnects consecutive failures it gives up.
//
// Threads: start(), snapshot(), request_stop(), finished() and join() are
// called from one controlling thread; the workers publish their statistics
// every 250 ms under a mutex for snapshot(). The runner must outlive join().
#include "loadtest/src/histogram.hpp"
#include "loadtest/src/options.hpp"
#include "loadtest/src/request_templates.hpp"

// GCC 12 at -O2 reports a "potential null pointer dereference" inside Asio's
// scheduler (its thread_info is never null there) wherever the reactor gets
// inlined; the finding is Asio's, so it is silenced for Asio's headers only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <asio/ip/tcp.hpp>
#pragma GCC diagnostic pop

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace loadtest {

using clock_type = std::chrono::steady_clock;

enum class error_kind : std::uint8_t { connect, write, read, parse, timeout, status };
inline constexpr std::size_t error_kind_count = 6;
const char* error_kind_name(error_kind k) noexcept;

struct run_stats {
  latency_histogram latency;     // measured requests, ns from intended send to complete response
  std::uint64_t requests = 0;    // measured requests with a complete response (any status)
  std::array<std::uint64_t, error_kind_count> errors{};
  std::uint64_t dropped = 0;     // open loop: measured requests never sent
  std::uint64_t reconnects = 0;  // connections reopened after a close or an error (whole run)
  std::uint64_t stale_retries = 0;  // requests resent once after a reused connection failed unanswered
  std::uint64_t bytes_sent = 0;  // whole run
  std::uint64_t bytes_received = 0;
  std::uint64_t all_responses = 0;  // whole run, including warm-up and drain (for progress)
  std::array<std::uint64_t, 600> status_counts{};  // measured, by status code
  clock_type::time_point last_measured_completion{};
  std::uint32_t live_connections = 0;  // open sockets at publication time

  std::uint64_t error_total() const noexcept;
  std::uint64_t errors_of(error_kind k) const noexcept { return errors[static_cast<std::size_t>(k)]; }
  void merge(const run_stats& other) noexcept;
};

struct run_plan {
  clock_type::time_point start;
  clock_type::time_point measure_start;
  clock_type::time_point measure_end;
  clock_type::time_point hard_deadline;
};

class load_runner {
 public:
  load_runner(const loadtest_options& options, std::vector<request_template> templates,
              asio::ip::tcp::endpoint target);
  ~load_runner();
  load_runner(const load_runner&) = delete;
  load_runner& operator=(const load_runner&) = delete;

  // Starts the worker threads; load begins at once. Call once.
  void start();
  const run_plan& plan() const noexcept;
  // Ends the run early: no new requests; in-flight ones are abandoned (not
  // counted as errors). Safe to call more than once.
  void request_stop() noexcept;
  bool stop_requested() const noexcept;
  // True once every worker has returned (all connections closed).
  bool finished() const noexcept;
  // True when --max-requests was reached.
  bool request_limit_reached() const noexcept;
  // The workers' latest published statistics, merged (up to 250 ms old).
  run_stats snapshot() const;
  // Waits for the workers; returns their final statistics, merged.
  run_stats join();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace loadtest
