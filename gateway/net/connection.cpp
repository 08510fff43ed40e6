#include "gateway/net/connection.hpp"

#include <asio/bind_allocator.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <algorithm>
#include <array>
#include <span>
#include <charconv>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "gateway/core/arena.hpp"
#include "gateway/core/coarse_clock.hpp"
#include "gateway/http/layer.hpp"
#include "gateway/http/request_parser.hpp"
#include "gateway/http/serializer.hpp"
#include "gateway/net/direct_op.hpp"
#include "gateway/net/interrupt.hpp"
#include "gateway/net/progress_deadline.hpp"
#include "gateway/net/proxy_protocol.hpp"
#include "gateway/net/tls_stream.hpp"
#include "gateway/net/worker.hpp"

namespace gateway::net {

namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
using clock = std::chrono::steady_clock;

// The read buffer: bytes [begin_, end_) are received and not yet consumed.
// Starts small and grows only for an unusually large head (up to max_head).
class read_buffer {
 public:
  explicit read_buffer(std::size_t initial) : cap_(initial) {}
  char* data() noexcept { return data_.get() + begin_; }
  std::size_t size() const noexcept { return end_ - begin_; }
  std::string_view view() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // Moves unconsumed bytes to the front so a request starts at offset 0.
  void compact() noexcept {
    if (begin_ == 0) return;
    std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  // Space to read into, growing the buffer (up to `max_cap`) when full.
  asio::mutable_buffer prepare(std::size_t max_cap) {
    if (!data_) data_ = std::make_unique<char[]>(cap_);
    if (end_ == cap_) {
      compact();
      if (end_ == cap_ && cap_ < max_cap) {
        std::size_t n = std::min(cap_ * 2, max_cap);
        auto bigger = std::make_unique<char[]>(n);
        std::memcpy(bigger.get(), data_.get(), end_);
        data_ = std::move(bigger);
        cap_ = n;
      }
    }
    return asio::buffer(data_.get() + end_, cap_ - end_);
  }
  // Ensures at least `n` bytes of space after the end (may move the data).
  void reserve_tail(std::size_t n) {
    if (data_ && cap_ - end_ >= n) return;
    if (!data_) data_ = std::make_unique<char[]>(cap_);
    compact();
    if (cap_ - end_ >= n) return;
    std::size_t bigger_cap = end_ + n;
    auto bigger = std::make_unique<char[]>(bigger_cap);
    std::memcpy(bigger.get(), data_.get(), end_);
    data_ = std::move(bigger);
    cap_ = bigger_cap;
  }
  // Space after the current end without compacting (the head before it must stay put).
  asio::mutable_buffer tail_space() noexcept { return asio::buffer(data_.get() + end_, cap_ - end_); }
  void commit(std::size_t n) noexcept { end_ += n; }
  // Drops bytes at the end (body bytes already copied out), keeping [begin_, begin_+keep).
  void truncate(std::size_t keep) noexcept { end_ = begin_ + keep; }
  bool allocated() const noexcept { return data_ != nullptr; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t cap_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// A chunked body, decoded into a buffer in the request arena that doubles
// as the data arrives; each growth is taken from the request's share of
// --body-budget first.
struct body_builder {
  core::arena* mem;
  char* data = nullptr;
  std::size_t size = 0;
  std::size_t cap = 0;
  std::uint64_t limit = 0;
  core::budget_hold* budget = nullptr;
  bool over_budget = false;

  static bool append(void* ctx, const char* p, std::size_t n) {
    auto* b = static_cast<body_builder*>(ctx);
    if (b->size + n > b->cap) {
      std::size_t want = std::max<std::size_t>(b->cap ? b->cap * 2 : 4096, b->size + n);
      if (want > b->limit) want = std::max<std::size_t>(b->limit, b->size + n);
      if (!b->budget->try_take(want - b->cap)) {
        b->over_budget = true;
        return false;
      }
      b->data = b->mem->grow(b->data, b->cap, want);
      b->cap = want;
    }
    std::memcpy(b->data + b->size, p, n);
    b->size += n;
    return true;
  }
};

// A Content-Length body's buffer in the request arena, and the share of
// --body-budget that covers it. The buffer is allocated once, at the
// declared length (a body over 128 KiB gets a mapping of its own, core/
// memory.hpp, whose pages become resident only as bytes are written into
// them), but the budget is taken as the bytes arrive: `covered` bytes are
// paid for, and a read never writes past them. The first room is
// `first_room` (or what the head's read already brought); each time the
// bytes reach it, it doubles. When doubling does not fit the budget, only
// `first_room` more is asked for, and only when that does not fit either
// is the body refused. A client that declares a large body and sends it
// slowly so holds at most about twice what it has sent, not what it
// declared. Doubling (not a fixed step) matters when many large bodies
// arrive at once and the budget runs out: a body further along holds and
// takes larger shares, so the room given back by a refused body lets some
// bodies finish instead of every body inching on until each is refused.
struct sized_body {
  static constexpr std::size_t first_room = 16 * 1024;
  core::budget_hold& budget;
  std::size_t len;
  char* data = nullptr;
  std::size_t covered = 0;

  // Covers at least min(need, len) bytes; false: over the budget.
  bool cover(std::size_t need) noexcept {
    need = std::min(need, len);
    if (need <= covered) return true;
    std::size_t want = std::min(len, std::max(need, covered * 2));
    if (!budget.try_take(want - covered)) {
      want = need;
      if (!budget.try_take(want - covered)) return false;
    }
    covered = want;
    return true;
  }
};

// The session's writes recycle their operation blocks among themselves, in
// a small per-thread cache of their own, instead of in Asio's per-thread
// cache, which hands its last freed blocks to any later operation that fits.
// A gather write's operation is large on the io_uring backend (1.6 KiB: its
// iovec array travels with it to the kernel); recycled through Asio's cache
// it became the block of the read a keep-alive connection then waits in for
// as long as it is idle. Kept apart, a waiting read gets a block of its own
// size, and a write still reuses a block instead of calling malloc.
// Any thread; each thread has its own cache, freed when the thread ends.
class write_block_cache {
 public:
  ~write_block_cache() {
    for (auto& b : blocks_) ::operator delete(b.p);
  }
  void* take(std::size_t n) {
    for (auto& b : blocks_) {
      if (b.p != nullptr && b.n == n) return std::exchange(b.p, nullptr);
    }
    return ::operator new(n);
  }
  void give(void* p, std::size_t n) noexcept {
    for (auto& b : blocks_) {
      if (b.p == nullptr) {
        b = {p, n};
        return;
      }
    }
    ::operator delete(p);
  }
  static write_block_cache& this_thread() noexcept {
    thread_local write_block_cache cache;
    return cache;
  }

 private:
  // A few, for the writes one worker has in flight at once; more are freed.
  struct block {
    void* p = nullptr;
    std::size_t n = 0;
  };
  std::array<block, 4> blocks_{};
};

template <class T>
struct write_allocator {
  using value_type = T;
  write_allocator() noexcept = default;
  template <class U>
  write_allocator(const write_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
    return static_cast<T*>(write_block_cache::this_thread().take(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { write_block_cache::this_thread().give(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const write_allocator<U>&) const noexcept {
    return true;
  }
};

// The completion token of those writes (a fresh one per call: Asio's
// binder forwards the token it holds, which must not be const). On the
// io_uring backend only: epoll's write operations are small enough not to
// matter to an idle read, and on epoll the separate cache cost about three
// more mallocs per request with 100 connections than Asio's own cache
// (perf gate allocations.100conn, 9.0 against a baseline of 6.1).
#if defined(ASIO_HAS_IO_URING)
auto write_nothrow() { return asio::bind_allocator(write_allocator<void>(), use_nothrow); }
#else
constexpr auto write_nothrow() { return use_nothrow; }
#endif

// Asio's transfer_all that, after a send that left part of the write
// (`total` bytes) to go, pushes the write's deadline: a partial send is
// when progress shows, so a write sent whole costs no clock reading and no
// system call more.
struct push_on_progress {
  const progress_deadline* watch;
  std::size_t total;
  std::size_t operator()(const std::error_code& ec, std::size_t done) const noexcept {
    if (!ec && done != 0 && done < total) watch->progressed();
    return asio::transfer_all()(ec, done);
  }
};

// The socket as the session's stream: each operation is the plain Asio one
// (no frame or copy of its own), so a plain connection runs the same code
// as without TLS support. Also the byte stream a tunnel relays.
class plain_stream final : public http::byte_stream {
 public:
  static constexpr bool is_tls = false;
  explicit plain_stream(asio::ip::tcp::socket& s) noexcept : s_(s) {}
  // The deadline the session's writes push on progress (write() and
  // write_into(); a tunnel's write_all() runs under its own idle clock).
  void watch_progress(progress_deadline d) noexcept { progress_ = d; }
  asio::awaitable<io_result> read_some(asio::mutable_buffer into) override {
    return s_.async_read_some(into, use_nothrow);
  }
  asio::awaitable<io_result> write(std::span<const asio::const_buffer> bufs) {
    return asio::async_write(s_, bufs, push_on_progress{&progress_, asio::buffer_size(bufs)}, write_nothrow());
  }
  asio::awaitable<io_result> write_all(asio::const_buffer bytes) override {
    return asio::async_write(s_, bytes, write_nothrow());
  }
  // The session's per-request read and write (net/direct_op.hpp): no
  // coroutine frame of their own; the result lands in `out`.
  // `expect_empty`: the next request's read right after a response went
  // out (net::empty_read_hint).
  auto read_some_into(asio::mutable_buffer into, net::io_result& out, bool expect_empty) {
    return direct(out, [this, into, expect_empty](direct_handler h) {
      const net::empty_read_hint hint(expect_empty);
      s_.async_read_some(into, std::move(h));
    });
  }
  // Up to two non-empty pieces (a response's head and its body, the common
  // case) go out as one buffer or a two-element array, for which Asio's
  // write operation has forms of its own; a longer list takes the general
  // form, which prepares a 64-entry buffer array on every attempt.
  auto write_into(std::span<const asio::const_buffer> bufs, net::io_result& out) {
    return direct(out, [this, bufs](direct_handler h) {
      std::array<asio::const_buffer, 2> two;
      std::size_t k = 0;
      std::size_t total = 0;
      for (const auto& b : bufs) total += b.size();
      const push_on_progress until_done{&progress_, total};
      for (const auto& b : bufs) {
        if (b.size() == 0) continue;
        if (k == two.size()) {
          asio::async_write(s_, bufs, until_done, std::move(h));
          return;
        }
        two[k++] = b;
      }
      if (k == 1) asio::async_write(s_, two[0], until_done, std::move(h));
      else asio::async_write(s_, two, until_done, std::move(h));
    });
  }
  void shutdown_send() noexcept override {
    std::error_code ignored;
    s_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
  void interrupt() noexcept override { net::interrupt(s_); }

 private:
  asio::ip::tcp::socket& s_;
  progress_deadline progress_;
};

// The session is written once for both kinds of connection: Io is
// plain_stream (the socket itself, the same operations as a plain Asio
// session) or tls_stream.
template <class Io>
class session {
 public:
  // The read buffer starts at 1 KiB, as nginx's client_header_buffer_size:
  // most request heads fit, and a session under load keeps it for as long
  // as its connection is busy. A longer head doubles it (up to
  // --max-head + 1 KiB), once per session.
  static constexpr std::size_t initial_read_buffer = 1024;
  session(connection_state& st, Io& io)
      : st_(st),
        w_(st.owner),
        cfg_(w_.cfg()),
        io_(io),
        in_(initial_read_buffer),
        mem_(w_.arena_blocks()),
        budget_(w_.body_budget()) {
    io_.watch_progress(progress_deadline{&st_.deadline, cfg_.write_timeout});
  }
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  // Serves requests until the connection closes (false) or, idle, is told
  // to shed its session (true: the socket stays open, nothing is buffered).
  asio::awaitable<bool> run();

 private:
  // next: keep the connection for another request; close: end it cleanly
  // (TLS: close_notify, then FIN); broken: a response could not be
  // completed (its stream failed, or a write to the client failed or timed
  // out after part of it may have gone), so the connection is reset (no
  // close_notify, no FIN) and a client reading a close-delimited body
  // cannot take what it got for the whole of it (RFC 9112 section 9.8).
  enum class outcome { next, close, broken };

  // Both also clear timed_out: the sweep sets it when it cancels the
  // pending operation, but an operation that had already completed (on
  // io_uring, in the kernel before the cancel reached it) returns success
  // and nobody reads the flag; left set, it would make the sweep pass over
  // this connection's later deadlines.
  void set_phase(conn_phase p, std::chrono::nanoseconds timeout) {
    st_.phase = p;
    st_.deadline = timeout.count() > 0 ? core::coarse_steady_now() + timeout : clock::time_point::max();
    st_.timed_out = false;
  }
  void push_deadline(std::chrono::nanoseconds timeout) {
    st_.deadline = core::coarse_steady_now() + timeout;
    st_.timed_out = false;
  }
  // The body's deadline once `received` of its bytes are in: the next read
  // within --body-timeout, and, with --body-min-rate, the whole body at that
  // average rate at least after a first --body-timeout of grace (measured
  // from body_start_), so a body that trickles in ends however short its
  // gaps. begin_body() starts the body phase with the bytes already
  // buffered; body_progress() follows every read.
  void begin_body(std::uint64_t received) {
    body_start_ = core::coarse_steady_now();
    body_progress(received);
  }
  void body_progress(std::uint64_t received) {
    const auto now = core::coarse_steady_now();
    auto deadline = now + cfg_.body_timeout;
    if (cfg_.body_min_rate != 0) {
      const auto allowed = std::chrono::duration_cast<clock::duration>(
          std::chrono::duration<double>(static_cast<double>(received) / static_cast<double>(cfg_.body_min_rate)));
      deadline = std::min(deadline, body_start_ + cfg_.body_timeout + allowed);
    }
    st_.phase = conn_phase::body;
    st_.deadline = deadline;
    st_.timed_out = false;
  }
  // A refused body's buffer and its budget go before the lingering close,
  // which may read (and discard) for up to 30 s: nothing of the request is
  // used after its error answer.
  void drop_request_memory() noexcept {
    mem_.reset();
    budget_.release();
  }

  // The common path of a request (head read, no body or a small one
  // already buffered, response written in one send) runs in run()'s own
  // frame: every nested coroutine is a heap allocation under load.
  enum class head_step { complete, error, more };
  void begin_head();
  head_step parse_buffered_head(http::request& req, http::head_result& head);
  asio::awaitable<void> reject_head(const http::head_result& head);
  bool body_is_buffered(http::request& req, const http::head_result& head);
  asio::awaitable<outcome> read_body(http::request& req, const http::head_result& head);
  // The first send of a response: the head and whatever body is at hand.
  struct first_write {
    std::array<asio::const_buffer, 5> bufs;
    std::size_t total = 0;
    bool done = false;         // nothing follows
    bool close_after = false;  // when done: close the connection afterwards
    bool keep_alive = false;
    http::body_framing framing{};
    char size_line[24];
  };
  // Body bytes up to which prepare_response copies the body behind the head.
  static constexpr std::size_t coalesce_limit = 4096;
  void prepare_response(http::exchange& ex, first_write& fw);
  asio::awaitable<outcome> write_stream(http::exchange& ex, http::body_framing framing);
  asio::awaitable<outcome> run_tunnel(http::exchange& ex);
  asio::awaitable<void> send_error(int status, std::string_view message, bool http10, bool retry_after = false);
  bool read_timed_out() noexcept;
  void count_write_timeout() noexcept;
  asio::awaitable<bool> read_proxy_header();
  asio::awaitable<void> linger_close();
  asio::awaitable<bool> write_all(std::span<const asio::const_buffer> bufs);

  connection_state& st_;
  worker& w_;
  const core::config& cfg_;
  Io& io_;
  read_buffer in_;
  http::request_parser parser_;
  std::size_t head_scanned_ = 0;  // parse_head's search position in the head being read
  // The chain the current request runs on (a reload may install another
  // meanwhile). Declared before mem_, so it outlives the arena's objects,
  // which may point into the chain (the proxy's pool).
  std::shared_ptr<chain_generation> chain_;
  core::arena mem_;
  std::string out_;
  std::uint64_t request_bytes_ = 0;  // head + body bytes of the current request in in_
  // The current request's share of --body-budget: its body's buffer and
  // whatever a layer buffers for it (ctx.body_budget), given back when the
  // request is over and mem_ reset.
  core::budget_hold budget_;
  clock::time_point body_start_{};  // when the current body's reading began
  bool shed_ = false;
};

template <class Io>
asio::awaitable<bool> session<Io>::write_all(std::span<const asio::const_buffer> bufs) {
  std::size_t total = 0;
  for (const auto& b : bufs) total += b.size();
  // The stream pushes the write's deadline on each send that makes
  // progress (net/progress_deadline.hpp); a client that reads nothing
  // times out.
  auto [ec, n] = co_await io_.write(bufs);
  const bool sent = !ec && n == total;
  if (!sent) count_write_timeout();
  co_return sent;
}

template <class Io>
asio::awaitable<void> session<Io>::send_error(int status, std::string_view message, bool http10, bool retry_after) {
  http::response res;
  res.status = status;
  res.close = true;
  out_.clear();
  // Minimal head: no header_list needed.
  char body[256];
  std::size_t len = std::min(message.size(), sizeof body - 1);
  std::memcpy(body, message.data(), len);
  body[len++] = '\n';
  res.body = {body, len};
  core::arena scratch(512);
  res.headers = http::header_list(scratch);
  res.headers.add("Content-Type", "text/plain; charset=utf-8");
  if (retry_after) res.headers.add("Retry-After", "1");
  http::head_options opts;
  opts.keep_alive = false;
  opts.http10_client = http10;
  http::write_response_head(out_, res, opts);
  set_phase(conn_phase::write, cfg_.write_timeout);
  std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(res.body)};
  co_await write_all(bufs);
}

// True (once, counted) when a read failed because the sweep found the
// head's or the body's deadline passed: not a hard abort, not an idle
// keep-alive connection (which just closes). The caller answers 408.
template <class Io>
bool session<Io>::read_timed_out() noexcept {
  if (!st_.timed_out || st_.aborted || st_.phase == conn_phase::idle) return false;
  core::bump(w_.counters().timeouts);
  st_.timed_out = false;
  return true;
}

// A write that failed because the sweep found it without progress for
// --write-timeout is counted (once) with the other client timeouts.
template <class Io>
void session<Io>::count_write_timeout() noexcept {
  if (!st_.timed_out || st_.aborted || st_.phase != conn_phase::write) return;
  core::bump(w_.counters().timeouts);
  st_.timed_out = false;
}

// After an error answer, the client may still be sending (a body we refused).
// Closing at once would make the kernel send RST and the client could lose
// our response; so stop sending, then read and discard for a short while
// (RFC 9112 section 9.6, "lingering close").
template <class Io>
asio::awaitable<void> session<Io>::linger_close() {
  // As long as the client keeps sending (a gap of at most 2 s), up to 30 s
  // and 64 MiB in all: a client still pushing a large refused body gets to
  // finish and read the answer, one that goes quiet is closed after 2 s.
  constexpr auto quiet_limit = std::chrono::seconds(2);
  constexpr auto total_limit = std::chrono::seconds(30);
  std::error_code ignored;
  io_.shutdown_send();
  const auto until = clock::now() + total_limit;
  std::array<char, 4096> sink;
  std::uint64_t discarded = 0;
  while (discarded < 64ull * 1024 * 1024 && !st_.timed_out && !st_.stop_requested) {
    const auto left = until - clock::now();
    if (left <= clock::duration::zero()) break;
    set_phase(conn_phase::linger, std::min<std::chrono::nanoseconds>(quiet_limit, left));
    auto [ec, n] = co_await st_.socket.async_read_some(asio::buffer(sink), use_nothrow);
    if (ec) break;
    discarded += n;
  }
  st_.socket.close(ignored);
}

template <class Io>
void session<Io>::begin_head() {
  in_.compact();
  head_scanned_ = 0;
  if (in_.size() == 0) {
    // Nothing pipelined: the connection may wait idle for long, so its
    // arena block goes back to the worker's pool until the next request.
    mem_.release_first();
    if (st_.resumed) {
      st_.phase = conn_phase::idle;  // the parked spell's deadline and idle_since go on
    } else {
      set_phase(conn_phase::idle, cfg_.idle_timeout);
      st_.idle_since = core::coarse_steady_now();
    }
    st_.shed = false;
  } else {
    set_phase(conn_phase::head, cfg_.header_timeout);
  }
  st_.resumed = false;
}

template <class Io>
typename session<Io>::head_step session<Io>::parse_buffered_head(http::request& req, http::head_result& head) {
  if (in_.size() == 0) return head_step::more;
  http::head_limits limits{static_cast<std::size_t>(cfg_.max_head), cfg_.max_headers,
                           static_cast<std::size_t>(cfg_.max_target)};
  head = parser_.parse_head(in_.view(), req, limits, &head_scanned_);
  if (head.what == http::head_result::kind::complete) return head_step::complete;
  if (head.what == http::head_result::kind::error) return head_step::error;
  return head_step::more;
}

template <class Io>
asio::awaitable<void> session<Io>::reject_head(const http::head_result& head) {
  core::bump(w_.counters().bad_requests);
  co_await send_error(head.status, head.message, false);
  co_await linger_close();
}

// No body, or a small one already in the read buffer: the views stay valid
// until the request ends (the buffer is reused by a pipelined request only
// after this one), so it is used where it lies.
template <class Io>
bool session<Io>::body_is_buffered(http::request& req, const http::head_result& head) {
  if (head.chunked) return false;
  const std::size_t body_start = head.head_size;
  if (head.content_length == 0) {
    req.body = {};
    request_bytes_ = body_start;
    return true;
  }
  if (head.content_length > 2048 || head.content_length > cfg_.max_body || in_.size() - body_start < head.content_length)
    return false;
  const auto len = static_cast<std::size_t>(head.content_length);
  req.body = std::string_view(in_.data() + body_start, len);
  request_bytes_ = body_start + len;
  return true;
}

template <class Io>
asio::awaitable<typename session<Io>::outcome> session<Io>::read_body(http::request& req, const http::head_result& head) {
  const bool http10 = req.version_minor == 0;
  std::size_t body_start = head.head_size;  // offset in in_ where body bytes begin
  req.body = {};

  if (!head.chunked) {
    if (head.content_length > cfg_.max_body) {
      co_await send_error(413, "request body too large", http10);
      co_await linger_close();
      co_return outcome::close;
    }
    std::size_t len = static_cast<std::size_t>(head.content_length);
    request_bytes_ = body_start;
    if (len == 0) co_return outcome::next;
    // (A small body already buffered never gets here: body_is_buffered.)
    std::size_t buffered = std::min(len, in_.size() - body_start);
    sized_body body{budget_, len};
    auto over_budget = [&]() -> asio::awaitable<outcome> {
      core::bump(w_.counters().rejected_bodies);
      co_await send_error(503, "server busy: too many request bytes in flight, retry", http10, true);
      drop_request_memory();
      co_await linger_close();
      co_return outcome::close;
    };
    // The first room is taken before a 100 Continue, so a client told 503
    // sends no body. A client that asked to be told before sending
    // (Expect: 100-continue) gets room for its whole declared body (at most
    // --max-body, checked above) before the 100: once told to continue it
    // is not refused part way.
    const bool asked = head.expect_continue && buffered < len;
    if (!body.cover(asked ? len : std::max(buffered, sized_body::first_room))) co_return co_await over_budget();
    body.data = static_cast<char*>(mem_.allocate(len, 1));
    core::bump(w_.counters().body_buffers);
    std::memcpy(body.data, in_.data() + body_start, buffered);
    // Body bytes past what was buffered are read straight into the arena;
    // bytes after the body (a pipelined request) stay in the read buffer.
    request_bytes_ = body_start + buffered;
    if (asked) {
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      std::array<asio::const_buffer, 1> b{asio::buffer(cont)};
      const bool sent = co_await write_all(b);
      if (!sent) co_return outcome::close;
    }
    std::size_t got = buffered;
    begin_body(got);
    while (got < len) {
      if (got == body.covered && !body.cover(got + sized_body::first_room)) co_return co_await over_budget();
      auto [ec, n] = co_await io_.read_some(asio::buffer(body.data + got, body.covered - got));
      if (ec) {
        if (read_timed_out()) co_await send_error(408, "request body not received in time", http10);
        co_return outcome::close;
      }
      got += n;
      core::bump(w_.counters().bytes_in, n);
      body_progress(got);
    }
    req.body = std::string_view(body.data, len);
    co_return outcome::next;
  }

  // Chunked: decode into a growing arena buffer (RFC 9112 section 7.1).
  body_builder b{&mem_, nullptr, 0, 0, cfg_.max_body, &budget_};
  if (head.expect_continue) {
    static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
    std::array<asio::const_buffer, 1> bb{asio::buffer(cont)};
    if (in_.size() == body_start) {
      const bool sent = co_await write_all(bb);
      if (!sent) co_return outcome::close;
    }
  }
  std::uint64_t received = in_.size() - body_start;  // raw bytes, chunk framing included
  begin_body(received);
  if (in_.tail_space().size() < 4096) {
    // The head nearly fills the buffer: grow it now, while nothing but the
    // head depends on it, and parse the head again so its views follow.
    in_.reserve_tail(8192);
    http::head_limits limits{static_cast<std::size_t>(cfg_.max_head), cfg_.max_headers,
                             static_cast<std::size_t>(cfg_.max_target)};
    http::head_result again = parser_.parse_head(in_.view(), req, limits);
    if (again.what != http::head_result::kind::complete) co_return outcome::close;
  }
  std::size_t pos = body_start;
  for (;;) {
    if (in_.size() > pos) {
      auto r = parser_.feed_chunked(std::string_view(in_.data() + pos, in_.size() - pos),
                                    &body_builder::append, &b, cfg_.max_body);
      if (r.what == http::chunk_result::kind::complete) {
        request_bytes_ = pos + r.consumed;
        req.body = std::string_view(b.data, b.size);
        if (b.size) core::bump(w_.counters().body_buffers);
        co_return outcome::next;
      }
      if (r.what == http::chunk_result::kind::too_large) {
        co_await send_error(413, "request body too large", http10);
        drop_request_memory();
        co_await linger_close();
        co_return outcome::close;
      }
      if (r.what == http::chunk_result::kind::error && b.over_budget) {
        core::bump(w_.counters().rejected_bodies);
        co_await send_error(503, "server busy: too many request bytes in flight, retry", http10, true);
        drop_request_memory();
        co_await linger_close();
        co_return outcome::close;
      }
      if (r.what == http::chunk_result::kind::error) {
        core::bump(w_.counters().bad_requests);
        co_await send_error(400, r.message, http10);
        drop_request_memory();
        co_await linger_close();
        co_return outcome::close;
      }
      // All consumed: drop those bytes but keep the head in place.
      in_.truncate(body_start);
      pos = body_start;
    }
    auto [ec, n] = co_await io_.read_some(in_.tail_space());
    if (ec) {
      if (read_timed_out()) co_await send_error(408, "request body not received in time", http10);
      co_return outcome::close;
    }
    in_.commit(n);
    core::bump(w_.counters().bytes_in, n);
    received += n;
    body_progress(received);
  }
}

template <class Io>
asio::awaitable<typename session<Io>::outcome> session<Io>::write_stream(http::exchange& ex, http::body_framing framing) {
  static constexpr std::string_view crlf = "\r\n";
  static constexpr std::string_view last_chunk = "0\r\n\r\n";
  for (;;) {
    auto [ec, piece] = co_await ex.res.stream->next();
    if (ec) co_return outcome::broken;
    if (piece.empty()) break;
    set_phase(conn_phase::write, cfg_.write_timeout);
    if (framing == http::body_framing::chunked) {
      char size_line[24];
      auto r = std::to_chars(size_line, size_line + 16, piece.size(), 16);
      std::memcpy(r.ptr, "\r\n", 2);
      std::array<asio::const_buffer, 3> bufs{
          asio::buffer(size_line, static_cast<std::size_t>(r.ptr - size_line) + 2), asio::buffer(piece),
          asio::buffer(crlf)};
      const bool sent = co_await write_all(bufs);
      if (!sent) co_return outcome::broken;
    } else {
      std::array<asio::const_buffer, 1> bufs{asio::buffer(piece)};
      const bool sent = co_await write_all(bufs);
      if (!sent) co_return outcome::broken;
    }
    set_phase(conn_phase::handler, {});
  }
  if (framing == http::body_framing::chunked) {
    std::array<asio::const_buffer, 1> bufs{asio::buffer(last_chunk)};
    const bool sent = co_await write_all(bufs);
    if (!sent) co_return outcome::broken;
  }
  co_return framing == http::body_framing::until_close ? outcome::close : outcome::next;
}

template <class Io>
void session<Io>::prepare_response(http::exchange& ex, first_write& fw) {
  http::head_options opts;
  opts.http10_client = ex.req.version_minor == 0;
  opts.head_request = ex.req.method_id == HTTP_HEAD;
  opts.keep_alive = ex.req.keep_alive && !ex.res.close && !st_.stop_requested;
  fw.keep_alive = opts.keep_alive;
  out_.clear();
  fw.framing = http::write_response_head(out_, ex.res, opts);
  const bool no_body = opts.head_request || ex.res.no_body || http::status_has_no_body(ex.res.status);
  set_phase(conn_phase::write, cfg_.write_timeout);
  if (ex.res.stream == nullptr || no_body) {
    fw.bufs = {asio::buffer(out_), asio::buffer(no_body ? std::string_view{} : ex.res.body)};
    fw.done = true;
    fw.close_after = !opts.keep_alive;
  } else {
    // The head goes out with whatever body the stream already holds (for a
    // small proxied response, all of it): one send instead of two.
    std::string_view first = ex.res.stream->take_ready();
    fw.done = ex.res.stream->finished();
    const bool chunked = fw.framing == http::body_framing::chunked;
    std::size_t size_len = 0;
    if (chunked && !first.empty()) {
      auto r = std::to_chars(fw.size_line, fw.size_line + 16, first.size(), 16);
      std::memcpy(r.ptr, "\r\n", 2);
      size_len = static_cast<std::size_t>(r.ptr - fw.size_line) + 2;
    }
    static constexpr std::string_view crlf = "\r\n";
    static constexpr std::string_view last_chunk = "0\r\n\r\n";
    fw.bufs = {asio::buffer(out_), asio::buffer(fw.size_line, size_len), asio::buffer(first),
               asio::buffer(chunked && !first.empty() ? crlf : std::string_view{}),
               asio::buffer(chunked && fw.done ? last_chunk : std::string_view{})};
    fw.close_after = fw.framing == http::body_framing::until_close || !opts.keep_alive;
  }
  // A small body joins the head in out_: one buffer goes out as a plain
  // send, where head and body would take a sendmsg (on io_uring a SENDMSG
  // copies in a message header and an iovec array, which costs more than
  // copying a few KiB here).
  std::size_t body_bytes = 0;
  for (std::size_t i = 1; i < fw.bufs.size(); ++i) body_bytes += fw.bufs[i].size();
  if (body_bytes != 0 && body_bytes <= coalesce_limit) {
    for (std::size_t i = 1; i < fw.bufs.size(); ++i)
      if (fw.bufs[i].size() != 0) out_.append(static_cast<const char*>(fw.bufs[i].data()), fw.bufs[i].size());
    fw.bufs = {asio::buffer(out_)};
  }
  fw.total = 0;
  for (const auto& b : fw.bufs) fw.total += b.size();
}

// After a 101 (RFC 9110 section 15.2.2, RFC 6455 section 4.2.2) the
// connection is no longer HTTP: write the head, then hand the socket to the
// handler's tunnel until either side is done. The head is written here, not
// by the serializer, because it must carry Connection: upgrade as the
// handler set it. The tunnel keeps its own idle clock, so the sweep leaves
// the connection alone; a hard abort still closes both sockets.
template <class Io>
asio::awaitable<typename session<Io>::outcome> session<Io>::run_tunnel(http::exchange& ex) {
  out_.clear();
  out_.append("HTTP/1.1 101 Switching Protocols\r\n");
  for (const auto& f : ex.res.headers) {
    out_.append(f.name);
    out_.append(": ");
    out_.append(f.value);
    out_.append("\r\n");
  }
  out_.append("\r\n");
  set_phase(conn_phase::write, cfg_.write_timeout);
  std::array<asio::const_buffer, 1> head{asio::buffer(out_)};
  const bool sent = co_await write_all(head);
  if (!sent) co_return outcome::close;
  set_phase(conn_phase::handler, {});
  std::string_view pending = in_.view().substr(std::min<std::size_t>(request_bytes_, in_.size()));
  co_await ex.res.upgrade->run(io_, pending, cfg_.tunnel_idle_timeout);
  co_return outcome::close;
}

// --proxy-protocol: the header comes before any HTTP byte, within
// --header-timeout. Bytes read past it stay in the buffer for the first
// request. False when the connection must close: no valid header
// (counted, unless the client closed before sending a byte), or a drain.
template <class Io>
asio::awaitable<bool> session<Io>::read_proxy_header() {
  set_phase(conn_phase::head, cfg_.header_timeout);
  for (;;) {
    const proxy_header h = parse_proxy_header(in_.view());
    if (h.what == proxy_header::kind::complete) {
      in_.consume(h.size);
      st_.proxy_header_read = true;
      if (h.has_source)
        st_.client_address_len = format_remote_address(h.source, h.source_port, st_.client_address,
                                                       sizeof st_.client_address, st_.client_ip);
      co_return true;
    }
    if (h.what == proxy_header::kind::invalid) break;
    auto [ec, n] = co_await st_.socket.async_read_some(in_.prepare(proxy_header_max_size), use_nothrow);
    if (ec) {
      if (st_.aborted || (!st_.timed_out && in_.size() == 0)) co_return false;
      break;
    }
    in_.commit(n);
    core::bump(w_.counters().bytes_in, n);
  }
  core::bump(w_.counters().proxy_rejected);
  co_return false;
}

template <class Io>
asio::awaitable<bool> session<Io>::run() {
  if (cfg_.proxy_protocol && !st_.proxy_header_read) {
    const bool ok = co_await read_proxy_header();
    if (!ok) {
      std::error_code ignored;
      st_.socket.close(ignored);
      co_return false;
    }
  }
  if constexpr (Io::is_tls) {
    // Once per connection, within --header-timeout (the sweep cancels a
    // stalled one); a session started after an idle spell skips it.
    if (!io_.handshake_done()) {
      set_phase(conn_phase::head, cfg_.header_timeout);
      const std::error_code ec = co_await io_.handshake();
      if (ec) {
        if (st_.timed_out) {
          core::bump(w_.counters().timeouts);
          core::bump(w_.counters().tls_timeouts);
        } else if (!st_.aborted) {
          core::bump(w_.counters().tls_failures);
        }
        std::error_code ignored;
        st_.socket.close(ignored);
        co_return false;
      }
      core::bump(w_.counters().tls_handshakes);
      if (io_.resumed()) core::bump(w_.counters().tls_resumed);
    }
  }

  while (!st_.aborted) {
    mem_.reset();
    http::exchange ex;
    // Runs ex.ctx.at_end once: where the request ends below, or when this
    // frame is destroyed mid-request.
    struct at_end_guard {
      http::request_context& c;
      void run() noexcept {
        if (auto* f = c.at_end) {
          c.at_end = nullptr;
          f(c.at_end_arg);
        }
      }
      ~at_end_guard() { run(); }
    } at_end{ex.ctx};
    ex.req.headers = http::header_list(mem_);
    ex.res.headers = http::header_list(mem_);
    http::head_result head;
    begin_head();
    bool have_head = false;
    for (;;) {
      head_step step = parse_buffered_head(ex.req, head);
      if (step == head_step::complete) {
        have_head = true;
        st_.fresh = false;
        break;
      }
      if (step == head_step::error) {
        co_await reject_head(head);
        break;
      }
      if (st_.stop_requested && st_.phase == conn_phase::idle && !st_.fresh) break;
      const std::size_t max_cap = static_cast<std::size_t>(cfg_.max_head) + 1024;
      const asio::mutable_buffer space = in_.prepare(max_cap);
      net::io_result got;
      if constexpr (Io::is_tls) got = co_await io_.read_some(space);
      else co_await io_.read_some_into(space, got, st_.phase == conn_phase::idle && !st_.fresh && in_.size() == 0);
      auto [ec, n] = got;
      if (ec) {
        if (ec == asio::error::operation_aborted && st_.shed && st_.phase == conn_phase::idle && in_.size() == 0 &&
            !st_.timed_out && !st_.aborted && !st_.stop_requested) {
          if constexpr (Io::is_tls) {
            // Part of a record has come: a request is arriving, so the
            // session stays and the head's timeout runs from its first
            // byte, as a plain connection's does from the first byte of
            // its head.
            if (const auto since = io_.partial_record_since(); since != clock::time_point::max()) {
              st_.phase = conn_phase::head;
              st_.deadline = since + cfg_.header_timeout;
              st_.shed = false;
              continue;
            }
          }
          shed_ = true;  // the read was cancelled to free this session: the socket stays
          break;
        }
        if (read_timed_out()) co_await send_error(408, "request head not received in time", false);
        break;
      }
      in_.commit(n);
      core::bump(w_.counters().bytes_in, n);
      if (st_.phase == conn_phase::idle) set_phase(conn_phase::head, cfg_.header_timeout);
      else if (st_.timed_out && read_timed_out()) {
        // The head's deadline passed as this read completed (the sweep's
        // cancel came too late to fail it): the head is late all the same.
        co_await send_error(408, "request head not received in time", false);
        break;
      }
    }
    if (!have_head) break;
    if (!body_is_buffered(ex.req, head)) {
      const outcome read = co_await read_body(ex.req, head);
      if (read == outcome::close) break;
    }

    auto& counters = w_.counters();
    struct in_flight_guard {
      core::live_shard& c;
      explicit in_flight_guard(core::live_shard& s) : c(s) { core::bump(c.requests_in_flight); }
      ~in_flight_guard() { core::drop(c.requests_in_flight); }
    } in_flight(counters);
    core::bump(counters.requests_total);
    ex.ctx.mem = &mem_;
    ex.ctx.received_body = ex.req.body;
    ex.ctx.client_ip = st_.client_ip;
    ex.ctx.client_address = std::string_view(st_.client_address, st_.client_address_len);
    ex.ctx.start = clock::now();
    ex.ctx.worker = w_.index();
    ex.ctx.tls = Io::is_tls;
    ex.ctx.body_budget = &budget_;
    set_phase(conn_phase::handler, {});
    // A hard abort and the sweep reach the backend work the handler
    // registers in ex.ctx.guard, until the response or tunnel is done.
    st_.request = &ex.ctx;
    chain_ = w_.current_chain();
    {
      // The chain runs in this coroutine (http/layer.hpp: pipeline::walk).
      // The walk (its layers' states, about 500 bytes) lives in the request
      // arena, not in this frame, which stays allocated while the
      // connection waits for its next request. Leaving the block runs the
      // layers' leave(), before the response is written (or, should this
      // frame be destroyed mid-request, while the arena still exists).
      using walk = http::pipeline::walk;
      struct walk_guard {
        walk* w;
        ~walk_guard() { w->~walk(); }
      } chain_walk{::new (mem_.allocate(sizeof(walk), alignof(walk))) walk(*chain_->chain, ex)};
      while (chain_walk.w->waiting()) chain_walk.w->resume(co_await chain_walk.w->await());
    }
    outcome o = outcome::close;
    if (!st_.aborted && !st_.client_gone) {
      if (ex.res.upgrade != nullptr && ex.res.status == 101 && ex.req.upgrade) o = co_await run_tunnel(ex);
      else {
        first_write fw;
        prepare_response(ex, fw);
        const std::span<const asio::const_buffer> bufs(fw.bufs);
        net::io_result sent;
        if constexpr (Io::is_tls) {
          // A last response takes its close_notify along (one send).
          if (fw.done && fw.close_after) io_.close_after_write();
          sent = co_await io_.write(bufs);
        } else {
          co_await io_.write_into(bufs, sent);
        }
        auto [ec, n] = sent;
        if (ec || n != fw.total) {
          // Part of the response may have gone out: a reset, so that no
          // client takes it for the whole.
          count_write_timeout();
          o = outcome::broken;
        } else if (fw.done) {
          o = fw.close_after ? outcome::close : outcome::next;
        } else {
          set_phase(conn_phase::handler, {});
          o = co_await write_stream(ex, fw.framing);
          if (!fw.keep_alive && o == outcome::next) o = outcome::close;
        }
      }
    }
    st_.request = nullptr;
    at_end.run();
    // Release the request's memory before waiting for the next one.
    ex.res.stream = nullptr;
    ex.res.upgrade = nullptr;
    mem_.reset();
    chain_.reset();
    budget_.release();
    in_.consume(std::min(request_bytes_, in_.size()));
    request_bytes_ = 0;
    if (o == outcome::broken) {
      std::error_code ignored;
      st_.socket.set_option(asio::socket_base::linger(true, 0), ignored);
      break;
    }
    if (o == outcome::close || st_.stop_requested) {
      io_.shutdown_send();
      break;
    }
  }
  if (shed_) {
    if constexpr (Io::is_tls) io_.release_idle();
    co_return true;
  }
  std::error_code ignored;
  st_.socket.close(ignored);
  co_return false;
}

}  // namespace

namespace {

std::size_t format_address_port(std::string_view a, bool v6, std::uint16_t port_number, char* buf, std::size_t cap,
                                std::string_view& ip) {
  std::array<char, 8> port{};
  std::size_t n = 0;
  auto put = [&](std::string_view s) {
    const std::size_t k = std::min(s.size(), cap - n);
    std::memcpy(buf + n, s.data(), k);
    n += k;
  };
  if (v6) put("[");
  const std::size_t ip_at = n;
  put(a);
  const std::size_t ip_len = n - ip_at;
  if (v6) put("]");
  put(":");
  auto r = std::to_chars(port.data(), port.data() + port.size(), port_number);
  put(std::string_view(port.data(), static_cast<std::size_t>(r.ptr - port.data())));
  ip = std::string_view(buf + ip_at, ip_len);
  return n;
}

}  // namespace

std::size_t format_remote_address(const asio::ip::tcp::endpoint& ep, char* buf, std::size_t cap,
                                  std::string_view& ip) {
  if (ep.address().is_v4()) {
    // Dotted decimal written here: inet_ntop formats IPv4 with sprintf,
    // about 2k instructions of every accepted connection.
    // At most 4 x 3 digits and 3 dots: the digits are written by hand, so
    // the bound is plain (std::to_chars would return the end on a failure
    // that cannot happen here, and the compiler cannot tell).
    const auto b = ep.address().to_v4().to_bytes();
    char text[16];
    char* p = text;
    for (std::size_t i = 0; i < 4; ++i) {
      if (i > 0) *p++ = '.';
      const unsigned v = b[i];
      if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
      *p++ = static_cast<char>('0' + v % 10);
    }
    return format_address_port(std::string_view(text, static_cast<std::size_t>(p - text)), false, ep.port(), buf, cap,
                               ip);
  }
  const std::string a = ep.address().to_string();
  return format_address_port(a, true, ep.port(), buf, cap, ip);
}

std::size_t format_remote_address(const core::ip_address& address, std::uint16_t port, char* buf, std::size_t cap,
                                  std::string_view& ip) {
  char text[core::max_ip_text];
  const std::size_t len = core::format_ip(address, text);
  return format_address_port(std::string_view(text, len), !address.v4, port, buf, cap, ip);
}

connection_state::connection_state(worker& w, asio::ip::tcp::socket s, const asio::ip::tcp::endpoint& peer)
    : owner(w), socket(std::move(s)) {
  owner.attach(*this);
  client_address_len = format_remote_address(peer, client_address, sizeof client_address, client_ip);
  std::error_code ec;
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
}

connection_state::connection_state(worker& w, asio::ip::tcp::socket s, const parked_connection& p)
    : owner(w),
      socket(std::move(s)),
      deadline(p.deadline),
      fresh(p.fresh),
      idle_since(p.idle_since),
      resumed(true),
      proxy_header_read(p.proxy_header_read),
      in_parking_set(true) {
  owner.attach(*this);
  client_address_len = p.client_address_len;
  std::memcpy(client_address, p.client_address(), client_address_len);
  if (p.client_ip_len != 0) client_ip = std::string_view(client_address + p.client_ip_offset, p.client_ip_len);
}

connection_state::~connection_state() { owner.detach(*this); }

void connection_state::cancel_io() noexcept {
  std::error_code ignored;
  socket.cancel(ignored);
}

void connection_state::abort() noexcept {
  aborted = true;
  interrupt(socket);
  cancel_signal.emit(asio::cancellation_type::terminal);
  if (request != nullptr && request->guard != nullptr) request->guard->abort();
}

asio::awaitable<void> serve_connection(std::shared_ptr<connection_state> state) {
  // A hard abort cancels the awaited operation; later awaits must not throw
  // (they fail on the interrupted socket instead, and the session unwinds).
  co_await asio::this_coro::throw_if_cancelled(false);
  bool shed = false;
  if (state->tls) {
    session<tls_stream> s(*state, *state->tls);
    shed = co_await s.run();
  } else {
    plain_stream io(state->socket);
    session<plain_stream> s(*state, io);
    shed = co_await s.run();
  }
  if (shed && !state->stop_requested && !state->aborted) {
    // The descriptor (and the TLS stream) move to the worker's parking lot
    // and this state goes.
    if (state->owner.park(*state)) co_return;
  }
  std::error_code ignored;
  state->socket.close(ignored);
}

}  // namespace gateway::net
