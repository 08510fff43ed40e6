#include "loadtest/src/load_runner.hpp"

#include "loadtest/src/http1_parser.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

namespace loadtest {

const char* error_kind_name(error_kind k) noexcept {
  switch (k) {
    case error_kind::connect: return "connect";
    case error_kind::write: return "write";
    case error_kind::read: return "read";
    case error_kind::parse: return "parse";
    case error_kind::timeout: return "timeout";
    case error_kind::status: return "status";
  }
  return "?";
}

std::uint64_t run_stats::error_total() const noexcept {
  std::uint64_t n = 0;
  for (std::uint64_t e : errors) n += e;
  return n;
}

void run_stats::merge(const run_stats& o) noexcept {
  latency.merge(o.latency);
  requests += o.requests;
  for (std::size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
  dropped += o.dropped;
  reconnects += o.reconnects;
  stale_retries += o.stale_retries;
  bytes_sent += o.bytes_sent;
  bytes_received += o.bytes_received;
  all_responses += o.all_responses;
  for (std::size_t i = 0; i < status_counts.size(); ++i) status_counts[i] += o.status_counts[i];
  last_measured_completion = std::max(last_measured_completion, o.last_measured_completion);
  live_connections += o.live_connections;
}

namespace {

constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);
constexpr std::size_t read_buffer_size = 16 * 1024;
constexpr auto housekeeping_period = std::chrono::milliseconds(50);
constexpr auto publish_period = std::chrono::milliseconds(250);

// Linux IP_BIND_ADDRESS_NO_PORT: bind() fixes only the source address and the
// port is picked at connect() time with the destination known, so thousands of
// sockets bound to a few addresses share the ephemeral range as unbound ones do.
class bind_address_no_port {
 public:
  template <typename Protocol>
  int level(const Protocol&) const noexcept { return IPPROTO_IP; }
  template <typename Protocol>
  int name(const Protocol&) const noexcept { return IP_BIND_ADDRESS_NO_PORT; }
  template <typename Protocol>
  const int* data(const Protocol&) const noexcept { return &value_; }
  template <typename Protocol>
  std::size_t size(const Protocol&) const noexcept { return sizeof(value_); }

 private:
  int value_ = 1;
};

enum class stop_reason : int { none, user, deadline, limit };

struct shared_state {
  loadtest_options options;
  std::vector<request_template> templates;
  std::vector<std::uint64_t> cumulative_weights;
  asio::ip::tcp::endpoint target;
  run_plan plan;
  std::array<bool, 600> expected{};
  double slot_interval_ns = 0;  // open loop: time between one connection's requests
  std::atomic<int> stop{static_cast<int>(stop_reason::none)};
  std::atomic<std::uint64_t> tickets{0};
  std::atomic<unsigned> running{0};

  stop_reason stopped() const noexcept { return static_cast<stop_reason>(stop.load(std::memory_order_relaxed)); }
  void set_stop(stop_reason r) noexcept {
    int none = static_cast<int>(stop_reason::none);
    stop.compare_exchange_strong(none, static_cast<int>(r), std::memory_order_relaxed);
  }
};

enum class cancel_reason : std::uint8_t { none, timeout, stop };

// One client connection. Owned by its worker (which outlives the coroutine);
// touched only on the worker's thread, by the connection's coroutine and by
// the worker's housekeeping coroutine (which closes the socket on timeout).
struct connection_state {
  connection_state(asio::io_context& io, std::uint64_t i)
      : socket(io), timer(io), index(i), rng(0x9E3779B97F4A7C15ULL ^ (i * 0xBF58476D1CE4E5B9ULL + 1)) {}

  asio::ip::tcp::socket socket;
  asio::steady_timer timer;
  std::unique_ptr<char[]> buffer = std::make_unique<char[]>(read_buffer_size);
  std::size_t begin = 0;
  std::size_t end = 0;
  http1_parser parser{message_kind::response};
  std::uint64_t index;
  std::uint64_t rng;
  std::uint64_t response_bytes = 0;  // read during the current exchange
  bool busy = false;  // a connect or request is in flight: the deadline applies
  cancel_reason cancelled = cancel_reason::none;
  clock_type::time_point deadline{};
};

struct worker {
  worker() : io(ASIO_CONCURRENCY_HINT_UNSAFE_IO) {}
  // Only this worker's thread runs the context and nothing is posted to it from
  // elsewhere, so the reactor's I/O locking can be skipped.
  asio::io_context io;
  std::vector<std::unique_ptr<connection_state>> connections;
  run_stats stats;
  std::uint32_t live = 0;
  mutable std::mutex published_mutex;
  run_stats published;
  std::thread thread;

  void publish() {
    std::lock_guard lock(published_mutex);
    published = stats;
    published.live_connections = live;
  }
};

void close_socket(connection_state& c) {
  std::error_code ignored;
  c.socket.close(ignored);
  c.begin = c.end = 0;
}

asio::awaitable<void> wait_until(connection_state& c, clock_type::time_point t) {
  c.timer.expires_at(t);
  auto [ec] = co_await c.timer.async_wait(nothrow);
  (void)ec;  // cancelled by housekeeping on stop: the caller re-checks
}

asio::awaitable<void> back_off(const shared_state& sh, connection_state& c, unsigned failures) {
  const auto delay = std::chrono::milliseconds(10) * (1U << std::min(failures, 7U));
  co_await wait_until(c, std::min(clock_type::now() + std::min<clock_type::duration>(delay, std::chrono::seconds(1)),
                                  sh.plan.hard_deadline));
}

asio::awaitable<std::error_code> connect(const shared_state& sh, connection_state& c) {
  std::error_code ec;
  close_socket(c);
  c.socket.open(asio::ip::tcp::v4(), ec);
  if (ec) co_return ec;
  if (sh.options.source_ips > 0) {
    c.socket.set_option(bind_address_no_port{}, ec);  // best effort: old kernels lack it
    const auto addr = asio::ip::address_v4(static_cast<asio::ip::address_v4::uint_type>(
        0x7F000002U + c.index % sh.options.source_ips));
    c.socket.bind(asio::ip::tcp::endpoint(addr, 0), ec);
    if (ec) {
      close_socket(c);
      co_return ec;
    }
  }
  c.busy = true;
  c.cancelled = cancel_reason::none;
  c.deadline = clock_type::now() + sh.options.timeout;
  auto [cec] = co_await c.socket.async_connect(sh.target, nothrow);
  c.busy = false;
  if (cec) {
    close_socket(c);
    co_return cec;
  }
  c.socket.set_option(asio::ip::tcp::no_delay(true), ec);
  co_return std::error_code{};
}

enum class outcome : std::uint8_t { ok, write_error, read_error, parse_error, connect_error };

// Reads one response into the connection's buffer, discarding the body.
// Bounded by what the server sends and by the housekeeping deadline, which
// closes the socket.
asio::awaitable<outcome> read_response(connection_state& c, bool no_body, run_stats& st) {
  c.parser.reset();
  c.parser.set_no_body_expected(no_body);
  c.response_bytes = 0;
  char* const buf = c.buffer.get();
  for (;;) {
    const parse_step step = c.parser.parse(std::string_view(buf + c.begin, c.end - c.begin));
    c.begin += step.consumed;
    switch (step.status) {
      case parse_status::head_complete:
      case parse_status::body_data:
        continue;
      case parse_status::complete:
        co_return outcome::ok;
      case parse_status::error:
        co_return outcome::parse_error;
      case parse_status::need_more:
        break;
    }
    if (c.begin == c.end) {
      c.begin = c.end = 0;
    } else if (c.end == read_buffer_size) {
      if (c.begin == 0) co_return outcome::parse_error;  // a head line longer than the buffer
      std::memmove(buf, buf + c.begin, c.end - c.begin);
      c.end -= c.begin;
      c.begin = 0;
    }
    auto [ec, n] = co_await c.socket.async_read_some(asio::buffer(buf + c.end, read_buffer_size - c.end), nothrow);
    if (ec) {
      if (ec == asio::error::eof && c.parser.finish_on_eof()) co_return outcome::ok;
      co_return outcome::read_error;
    }
    c.end += n;
    c.response_bytes += n;
    st.bytes_received += n;
  }
}

const request_template& pick_template(const shared_state& sh, connection_state& c) {
  if (sh.templates.size() == 1) return sh.templates.front();
  // xorshift64: cheap, and per connection so threads share nothing.
  c.rng ^= c.rng << 13;
  c.rng ^= c.rng >> 7;
  c.rng ^= c.rng << 17;
  const std::uint64_t r = c.rng % sh.cumulative_weights.back();
  const auto it = std::upper_bound(sh.cumulative_weights.begin(), sh.cumulative_weights.end(), r);
  return sh.templates[static_cast<std::size_t>(it - sh.cumulative_weights.begin())];
}

asio::awaitable<void> run_connection(shared_state& sh, worker& w, connection_state& c) {
  struct live_guard {
    worker& w;
    connection_state& c;
    ~live_guard() {
      close_socket(c);
      --w.live;
    }
  } guard{w, c};

  const run_plan& plan = sh.plan;
  run_stats& st = w.stats;
  const bool open_loop = sh.options.rate > 0;
  const double offset_ns = open_loop ? static_cast<double>(c.index) * 1e9 / sh.options.rate : 0.0;
  const auto slot_time = [&](std::uint64_t k) {
    return plan.start + std::chrono::nanoseconds(std::llround(offset_ns + static_cast<double>(k) * sh.slot_interval_ns));
  };
  std::uint64_t slot = 0;
  unsigned failures = 0;
  bool opened_before = false;
  bool reused = false;  // the open connection has carried a complete exchange

  // Each pass sends one request, or waits for its slot, or (re)connects; the
  // loop ends at measure_end (no request starts later), on stop, or when the
  // connection gives up.
  for (;;) {
    if (sh.stopped() != stop_reason::none) break;
    clock_type::time_point intended;
    if (open_loop) {
      intended = slot_time(slot);
      if (intended >= plan.measure_end) break;
      if (intended > clock_type::now()) {
        co_await wait_until(c, intended);
        continue;
      }
    } else if (clock_type::now() >= plan.measure_end) {
      break;
    }
    if (!c.socket.is_open()) {
      const std::error_code ec = co_await connect(sh, c);
      if (ec) {
        const auto now = clock_type::now();
        if (now >= plan.measure_start && now < plan.measure_end) ++st.errors[static_cast<std::size_t>(error_kind::connect)];
        if (++failures > sh.options.max_reconnects) break;
        co_await back_off(sh, c, failures);
        continue;
      }
      if (opened_before) ++st.reconnects;
      opened_before = true;
      reused = false;
    }
    if (!open_loop) intended = clock_type::now();
    const bool measured = intended >= plan.measure_start;
    if (measured && sh.options.max_requests > 0 &&
        sh.tickets.fetch_add(1, std::memory_order_relaxed) >= sh.options.max_requests) {
      sh.set_stop(stop_reason::limit);
      break;
    }

    const request_template& t = pick_template(sh, c);
    outcome result = outcome::ok;
    bool write_failed = false;
    // Bounded: a second attempt only after a stale keep-alive connection.
    for (int attempt = 0;; ++attempt) {
      c.busy = true;
      c.cancelled = cancel_reason::none;
      c.deadline = clock_type::now() + sh.options.timeout;
      c.response_bytes = 0;
      auto [wec, written] = co_await asio::async_write(c.socket, asio::buffer(t.wire), nothrow);
      st.bytes_sent += written;
      write_failed = static_cast<bool>(wec);
      result = wec ? outcome::write_error : outcome::ok;
      if (!wec) {
        result = co_await read_response(c, t.expects_no_body, st);
      } else if (c.cancelled == cancel_reason::none && wec != asio::error::operation_aborted) {
        // The server may have answered before reading the whole body (a 413
        // then close, RFC 9112 9.6): count that answer if it arrived.
        const outcome late = co_await read_response(c, t.expects_no_body, st);
        if (late == outcome::ok) result = outcome::ok;
      }
      c.busy = false;
      // A reused connection that fails before any byte of the answer was most
      // likely closed by the server while idle (its keep-alive timeout): like
      // a browser, send the request once more on a new connection (RFC 9112
      // 9.3.1), from the same intended time.
      const bool stale = attempt == 0 && reused && c.cancelled == cancel_reason::none && c.response_bytes == 0 &&
                         (result == outcome::read_error || result == outcome::write_error);
      if (!stale) break;
      ++st.stale_retries;
      reused = false;
      const auto connect_error = co_await connect(sh, c);
      if (connect_error) {
        result = outcome::connect_error;
        break;
      }
      ++st.reconnects;
    }
    const auto done = clock_type::now();
    if (open_loop) ++slot;
    if (c.cancelled == cancel_reason::stop) break;  // abandoned on request: not an error

    if (result == outcome::ok) {
      failures = 0;
      reused = true;
      ++st.all_responses;
      if (measured) {
        ++st.requests;
        st.latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::nanoseconds>(done - intended).count())));
        const int code = c.parser.status_code();
        const std::size_t slot_index = code >= 100 && code < 600 ? static_cast<std::size_t>(code) : 0;
        ++st.status_counts[slot_index];
        if (!sh.expected[slot_index]) ++st.errors[static_cast<std::size_t>(error_kind::status)];
        st.last_measured_completion = done;
      }
      if (write_failed || !c.parser.keep_alive()) {
        close_socket(c);
        reused = false;
      }
      continue;
    }
    error_kind kind = error_kind::read;
    if (result == outcome::connect_error) kind = error_kind::connect;
    else if (c.cancelled == cancel_reason::timeout) kind = error_kind::timeout;
    else if (result == outcome::write_error) kind = error_kind::write;
    else if (result == outcome::parse_error) kind = error_kind::parse;
    if (measured) ++st.errors[static_cast<std::size_t>(kind)];
    close_socket(c);
    reused = false;
    if (++failures > sh.options.max_reconnects) break;
    // A first failure reconnects at once; repeated ones back off.
    if (failures > 1) co_await back_off(sh, c, failures);
  }

  // Open loop: measured slots this connection never sent.
  const stop_reason why = sh.stopped();
  if (open_loop && why != stop_reason::user && why != stop_reason::limit) {
    const auto slots_before = [&](clock_type::time_point t) -> std::uint64_t {
      const double span = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t - plan.start).count());
      if (span <= offset_ns) return 0;
      return static_cast<std::uint64_t>(std::ceil((span - offset_ns) / sh.slot_interval_ns));
    };
    const std::uint64_t first = std::max(slot, slots_before(plan.measure_start));
    const std::uint64_t last = slots_before(plan.measure_end);
    if (last > first) st.dropped += last - first;
  }
}

// Per worker: enforces deadlines (closing sockets whose connect or request is
// overdue, and everything at the hard deadline or on stop) and publishes
// statistics. Ends when the worker's last connection has ended.
asio::awaitable<void> housekeeping(shared_state& sh, worker& w) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto next_publish = clock_type::now();
  while (w.live > 0) {
    timer.expires_after(housekeeping_period);
    auto [ec] = co_await timer.async_wait(nothrow);
    (void)ec;
    const auto now = clock_type::now();
    if (now >= sh.plan.hard_deadline) sh.set_stop(stop_reason::deadline);
    const stop_reason why = sh.stopped();
    const bool cancel_all = why == stop_reason::user || why == stop_reason::deadline;
    for (auto& c : w.connections) {
      if (c->busy && (now >= c->deadline || cancel_all)) {
        c->cancelled = why == stop_reason::user ? cancel_reason::stop : cancel_reason::timeout;
        std::error_code ignored;
        c->socket.close(ignored);
      } else if (!c->busy && why != stop_reason::none) {
        c->timer.cancel();
      }
    }
    if (now >= next_publish) {
      w.publish();
      next_publish = now + publish_period;
    }
  }
}

}  // namespace

struct load_runner::impl {
  shared_state shared;
  std::vector<std::unique_ptr<worker>> workers;
  bool started = false;
  bool joined = false;
};

load_runner::load_runner(const loadtest_options& options, std::vector<request_template> templates,
                         asio::ip::tcp::endpoint target)
    : impl_(std::make_unique<impl>()) {
  shared_state& sh = impl_->shared;
  sh.options = options;
  sh.templates = std::move(templates);
  sh.target = target;
  std::uint64_t sum = 0;
  for (const auto& t : sh.templates) sh.cumulative_weights.push_back(sum += t.weight);
  for (int code : options.expect_status) sh.expected[static_cast<std::size_t>(code)] = true;
  if (options.rate > 0) sh.slot_interval_ns = static_cast<double>(options.connections) * 1e9 / options.rate;

  const unsigned threads = std::max(1U, std::min(options.threads, options.connections));
  for (unsigned i = 0; i < threads; ++i) impl_->workers.push_back(std::make_unique<worker>());
  for (std::uint32_t i = 0; i < options.connections; ++i) {
    worker& w = *impl_->workers[i % threads];
    w.connections.push_back(std::make_unique<connection_state>(w.io, i));
  }
}

load_runner::~load_runner() {
  if (impl_ && impl_->started && !impl_->joined) {
    request_stop();
    join();
  }
}

void load_runner::start() {
  shared_state& sh = impl_->shared;
  impl_->started = true;
  sh.plan.start = clock_type::now();
  sh.plan.measure_start = sh.plan.start + sh.options.warmup;
  sh.plan.measure_end = sh.plan.measure_start + sh.options.duration;
  sh.plan.hard_deadline = sh.plan.measure_end + sh.options.timeout;
  sh.running.store(static_cast<unsigned>(impl_->workers.size()));
  for (auto& wp : impl_->workers) {
    worker* w = wp.get();
    w->live = static_cast<std::uint32_t>(w->connections.size());
    w->thread = std::thread([&sh, w] {
      // A coroutine that throws (nothing on the I/O path should) is logged
      // here; its live_guard has already counted it out.
      const auto backstop = [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "loadtest: connection failed: %s\n", ex.what());
        } catch (...) {
          std::fprintf(stderr, "loadtest: connection failed\n");
        }
      };
      for (auto& c : w->connections) asio::co_spawn(w->io, run_connection(sh, *w, *c), backstop);
      asio::co_spawn(w->io, housekeeping(sh, *w), backstop);
      w->io.run();
      w->publish();
      sh.running.fetch_sub(1, std::memory_order_release);
    });
  }
}

const run_plan& load_runner::plan() const noexcept { return impl_->shared.plan; }

void load_runner::request_stop() noexcept { impl_->shared.set_stop(stop_reason::user); }

bool load_runner::stop_requested() const noexcept { return impl_->shared.stopped() == stop_reason::user; }

bool load_runner::finished() const noexcept { return impl_->shared.running.load(std::memory_order_acquire) == 0; }

bool load_runner::request_limit_reached() const noexcept { return impl_->shared.stopped() == stop_reason::limit; }

run_stats load_runner::snapshot() const {
  run_stats total;
  for (const auto& w : impl_->workers) {
    std::lock_guard lock(w->published_mutex);
    total.merge(w->published);
  }
  return total;
}

run_stats load_runner::join() {
  for (auto& w : impl_->workers)
    if (w->thread.joinable()) w->thread.join();
  impl_->joined = true;
  run_stats total;
  for (const auto& w : impl_->workers) total.merge(w->stats);
  return total;
}

}  // namespace loadtest
