#include "gateway/proxy/proxy_handler.hpp"

#include <llhttp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "gateway/core/coarse_clock.hpp"
#include "gateway/core/perf_inject.hpp"
#include "gateway/http/syntax.hpp"
#include "gateway/proxy/backend_address.hpp"
#include "gateway/proxy/health_check.hpp"
#include "gateway/proxy/name_resolver.hpp"
#include "gateway/proxy/proxy_error.hpp"
#include "gateway/proxy/request_writer.hpp"
#include "gateway/proxy/response_reader.hpp"
#include "gateway/proxy/tunnel.hpp"

namespace gateway::proxy {

namespace {

// RFC 9110 section 9.2.2.
bool is_idempotent(int method_id) noexcept {
  switch (method_id) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_PUT:
    case HTTP_DELETE:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
      return true;
    default:
      return false;
  }
}

using clock = std::chrono::steady_clock;

// The response buffers of one worker's proxy route: taken when a request
// starts talking to the backend, given back when it ends, so the steady
// state allocates none. At most `max_idle` wait here (the rest are freed),
// which bounds what an earlier burst leaves behind; a buffer's untouched
// pages cost no memory, and a small response touches one.
class buffer_pool {
 public:
  buffer_pool(std::size_t size, std::size_t max_idle) : size_(size), max_idle_(max_idle) { idle_.reserve(max_idle); }
  ~buffer_pool() {
    for (char* p : idle_) ::operator delete(p);
  }
  buffer_pool(const buffer_pool&) = delete;
  buffer_pool& operator=(const buffer_pool&) = delete;

  std::size_t size() const noexcept { return size_; }
  char* take() {
    if (idle_.empty()) return static_cast<char*>(::operator new(size_));
    char* p = idle_.back();
    idle_.pop_back();
    return p;
  }
  void give_back(char* p) noexcept {
    if (idle_.size() < max_idle_) idle_.push_back(p);  // never reallocates: reserved
    else ::operator delete(p);
  }

 private:
  std::size_t size_;
  std::size_t max_idle_;
  std::vector<char*> idle_;
};

struct head_outcome {
  std::error_code ec;
  bool sent_nothing = false;  // the write failed before its first byte
};

// One proxied response: the upstream connection while the response is being
// read, the parser, and the one fixed buffer. Lives in the request arena; its
// destructor closes a connection whose response was not read to the end.
// Waits on the backend are bounded by the guard's deadline, which the
// worker's connection sweep enforces (expire()): no timer and no racing
// coroutine per request.
class upstream_response final : public http::body_source, public http::upstream_guard {
 public:
  upstream_response(upstream_pool& pool, buffer_pool& buffers, const proxy_options& opts, bool head_request,
                    http::request_context& ctx, bool upgrade = false)
      : upgrade_(upgrade),
        pool_(pool),
        buffers_(buffers),
        opts_(opts),
        mem_(*ctx.mem),
        conn_(pool.blank(), pool.stats()),
        reader_(head_request),
        pooled_(nullptr),
        buf_(nullptr),
        cap_(0) {
    watch_client(true);  // until the response head is in (end_exchange)
  }

  ~upstream_response() override {
    disarm();
    if (pooled_ != nullptr) buffers_.give_back(pooled_);
    if (conn_.is_open()) {
      core::bump(pool_.stats().discarded);
      conn_.close();
    }
    release_block();  // after the close: a read still pending on it frees it when it returns
  }

  upstream_connection& connection() noexcept { return conn_; }
  const response_reader& reader() const noexcept { return reader_; }
  bool aborted() const noexcept { return aborted_; }
  // The client left while the response head was awaited (client_gone()).
  bool client_left() const noexcept { return client_left_; }
  // The backend switched protocols (101 to an Upgrade request).
  bool switched() const noexcept { return switched_; }

  // After switched(): the upstream connection and the bytes that came after
  // the 101 head, moved into a tunnel in the request arena.
  upstream_tunnel* make_tunnel() {
    return mem_.make<upstream_tunnel>(std::move(conn_), std::string_view(buf_ + raw_begin_, raw_end_ - raw_begin_),
                                      opts_.buffer_size, mem_);
  }

  // Hard shutdown: end whatever awaits the backend connection (the
  // coroutine then fails with aborted and the connection is not reused).
  void abort() noexcept override {
    aborted_ = true;
    conn_.interrupt();
  }

  // The worker's sweep found the client gone while the response head was
  // awaited (connecting, sending or reading): the pending operation ends as
  // in abort(), the exchange reports client_closed, and the connection is
  // closed, not pooled (the backend's response, if any, is never read).
  void client_gone() noexcept override {
    client_left_ = true;
    abort();
  }

  // Sending the request and reading the response head, until `deadline`
  // (the request's, on the coarse clock: see await()): begin_exchange(), the
  // steps below (sent(), head_space(), head_read()) around the awaits in the
  // handler's frame, end_exchange(). (Calls rather than one coroutine around
  // them: a frame less per request.)
  //
  // A connection taken from the pool has its first read pending already
  // (upstream_pool.hpp): its buffer is the response's first, and head_space()
  // hands it out first. A fresh connection's first buffer is a block lent by
  // the pool (the request arena's only when memory is short); a retry on
  // one reads its head from the start.
  void begin_exchange(clock::time_point deadline) {
    start_ = filled_ = scanned_ = 0;
    write_failed_ = false;
    if (pending_read* w = conn_.watched()) {
      release_block();
      block_ = w;
      w->hold();
      buf_ = w->data();
      cap_ = pending_read::size;
    } else if (pooled_ == nullptr) {
      // A fresh connection (or a retry on one): a block of the pool's too.
      // A retry's block may still have a read pending on the connection it
      // came from, so it goes back and another comes.
      release_block();
      block_ = pool_.lend();
      if (block_ != nullptr) {
        buf_ = block_->data();
      } else {
        if (arena_buf_ == nullptr) arena_buf_ = static_cast<char*>(mem_.allocate(first_read_size, 1));
        buf_ = arena_buf_;
      }
      cap_ = first_read_size;
    }
    upstream_guard::arm_until(deadline);
  }
  head_outcome end_exchange(head_outcome o) noexcept {
    disarm();
    // A head that came in the same turn as the client's end is not used:
    // the connection writes no response once the client is gone.
    if (client_left_) o = head_outcome{make_error_code(proxy_errc::client_closed)};
    else if (timed_out_ && o.ec) o = head_outcome{make_error_code(proxy_errc::response_timeout)};
    if (!o.ec) watch_client(false);
    return o;
  }

  // After a good head: decodes body bytes that came with it, so that a
  // response already complete frees its connection before the client has
  // even been written to. False when those bytes are malformed (still in
  // time for a 502, as nothing has been sent to the client).
  bool start_body() noexcept {
    if (raw_end_ > raw_begin_) {
      auto d = reader_.decode(buf_, buf_ + raw_begin_, raw_end_ - raw_begin_);
      raw_begin_ = raw_end_ = 0;
      if (d.error) {
        fail(proxy_errc::bad_response);
        return false;
      }
      pending_ = d.size;
    }
    if (reader_.complete()) settle();
    return true;
  }

  std::string_view take_ready() noexcept override {
    std::string_view piece(buf_, pending_);
    pending_ = 0;
    return piece;
  }
  bool finished() const noexcept override { return pending_ == 0 && !failed_ && reader_.complete(); }

  asio::awaitable<std::pair<std::error_code, std::string_view>> next() override {
    if (pending_ > 0) {
      std::string_view piece(buf_, pending_);
      pending_ = 0;
      co_return std::pair{std::error_code{}, piece};
    }
    if (failed_) co_return std::pair{failed_, std::string_view{}};
    while (!reader_.complete()) {
      if (timed_out_ || aborted_ || !conn_.is_open())
        co_return fail(timed_out_ ? proxy_errc::body_timeout : proxy_errc::aborted);
      if (pooled_ == nullptr) use_pooled(0);  // a body longer than the first read: the big buffer now
      arm();
      net::io_result got;
      co_await conn_.read_some_into(asio::buffer(buf_, cap_), got);
      auto [ec, n] = got;
      disarm();
      if (timed_out_) co_return fail(proxy_errc::body_timeout);
      if (aborted_) co_return fail(proxy_errc::aborted);
      if (ec) {
        // A close-delimited body ends at a FIN, or over TLS at close_notify
        // only: a TLS connection closed without it may have been cut short
        // by anyone on the path (RFC 9112 section 9.8), so it counts as
        // truncated.
        if (ec == asio::error::eof && reader_.finish_at_eof()) {
          settle();  // close-delimited: this was its end
          break;
        }
        co_return fail(aborted_ || ec == asio::error::operation_aborted ? proxy_errc::aborted
                                                                          : proxy_errc::truncated_body);
      }
      auto d = reader_.decode(buf_, buf_, n);
      if (d.error) co_return fail(proxy_errc::bad_response);
      if (reader_.complete()) settle();
      if (d.size > 0) co_return std::pair{std::error_code{}, std::string_view(buf_, d.size)};
    }
    co_return std::pair{std::error_code{}, std::string_view{}};
  }

 private:
  // The response is first read into a small buffer: the pooled
  // connection's pending_read (upstream_pool.hpp), or for a fresh
  // connection one the pool lends. So a small response never holds a
  // pooled buffer; with 2,000 requests waiting on the backend that is 2,000
  // x 32 KiB less. A longer head or body moves to a pooled buffer of
  // buffer_size.
  static constexpr std::size_t first_read_size = pending_read::size;
  // Gives the pending_read back to the pool once nothing points into it.
  void release_block() noexcept {
    if (block_ != nullptr) pool_.recycle(std::exchange(block_, nullptr));
  }
  void use_pooled(std::size_t keep) {
    pooled_ = buffers_.take();
    std::memcpy(pooled_, buf_, keep);
    buf_ = pooled_;
    cap_ = buffers_.size();
  }

  void arm() noexcept { upstream_guard::arm(opts_.response_timeout); }

  // The deadline passed while waiting on the backend: interrupting the
  // socket ends the pending operation, which then reports the timeout.
  void expire() noexcept override {
    timed_out_ = true;
    conn_.interrupt();
  }

 public:
  // The exchange's steps between its two kinds of wait, called by the
  // proxy's await(), which awaits the write and the reads in its own frame
  // (no coroutine frame of the exchange's own, see begin_exchange()):
  //   write the request head and body, then sent(result);
  //   until an outcome: head_space(space), read into space, head_read(result).
  // Each returns the exchange's outcome once there is one. A terminal
  // cancellation (the connection's hard abort) ends it with an error
  // value, never an exception, and no new read starts after it.
  std::optional<head_outcome> sent(const net::io_result& r) noexcept {
    const auto& [wec, written] = r;
    if (!wec) return std::nullopt;
    if (aborted_) return head_outcome{make_error_code(proxy_errc::aborted)};
    if (written > 0 && !timed_out_) {
      // The backend may have answered and closed before taking the whole
      // request (a 413 for a large upload, RFC 9112 section 9.6): what it
      // sent is read as the response. Nothing at all is still
      // closed_before_response (head_read); the connection is never reused.
      write_failed_ = true;
      return std::nullopt;
    }
    return head_outcome{make_error_code(proxy_errc::closed_before_response), written == 0};
  }

  // Where the next read of the response head goes; an outcome when the
  // head has outgrown every buffer.
  std::optional<head_outcome> head_space(asio::mutable_buffer& space) {
    if (filled_ == cap_) {
      if (start_ > 0) {
        // Interim (1xx) heads were consumed: make room at the front.
        std::memmove(buf_, buf_ + start_, filled_ - start_);
        filled_ -= start_;
        scanned_ -= start_;
        start_ = 0;
      } else if (pooled_ == nullptr) {
        use_pooled(filled_);
      } else if (cap_ < opts_.max_response_head) {
        // An unusually large head: grow once or twice, up to the cap.
        std::size_t bigger = std::min(cap_ * 2, opts_.max_response_head);
        auto* p = static_cast<char*>(mem_.allocate(bigger, 1));
        std::memcpy(p, buf_, filled_);
        buf_ = p;
        cap_ = bigger;
      } else {
        return head_outcome{make_error_code(proxy_errc::response_head_too_large)};
      }
    }
    space = asio::buffer(buf_ + filled_, cap_ - filled_);
    return std::nullopt;
  }

  // A read into head_space() completed: parses what has come, the response
  // head into `fields` once it is complete.
  std::optional<head_outcome> head_read(const net::io_result& r, http::header_list& fields) {
    const auto& [ec, n] = r;
    if (ec) {
      if (aborted_ || ec == asio::error::operation_aborted) return head_outcome{make_error_code(proxy_errc::aborted)};
      // Nothing at all came back: the connection was closed under us (a
      // stale pooled one, typically); anything else is a broken response.
      return head_outcome{
          make_error_code(filled_ == 0 ? proxy_errc::closed_before_response : proxy_errc::bad_response)};
    }
    filled_ += n;
    for (;;) {
      std::string_view window(buf_ + start_, filled_ - start_);
      std::size_t end = find_head_end(window, scanned_ > start_ + 2 ? scanned_ - start_ - 2 : 0);
      if (end == 0) {
        scanned_ = filled_;
        if (filled_ - start_ >= opts_.max_response_head)
          return head_outcome{make_error_code(proxy_errc::response_head_too_large)};
        return std::nullopt;
      }
      fields.clear();
      if (end > 9 && window[9] == '1' && !(upgrade_ && is_switching_head(window.substr(0, end)))) {
        // A 1xx head (100/102/103) is skipped where it lies: a backend may
        // send any number of them, so none is kept (RFC 9110 section 15.2).
        auto st = reader_.parse_head(window.substr(0, end), fields, opts_.max_response_fields);
        fields.clear();
        if (st != response_reader::head_status::interim) return head_outcome{make_error_code(proxy_errc::bad_response)};
        start_ += end;
        scanned_ = start_;
        continue;
      }
      // The head is copied out so the buffer can take body bytes while
      // res.headers still point at the fields.
      std::string_view copy = mem_.copy(window.substr(0, end));
      if (upgrade_ && is_switching_head(copy)) {
        // RFC 9110 section 15.2.2: the connection now speaks what Upgrade
        // names; the rest of the buffer belongs to that protocol.
        if (!parse_switching_head(copy, fields) || fields.value_of("upgrade").empty())
          return head_outcome{make_error_code(proxy_errc::bad_response)};
        switched_ = true;
        raw_begin_ = start_ + end;
        raw_end_ = filled_;
        return head_outcome{};
      }
      auto st = reader_.parse_head(copy, fields, opts_.max_response_fields);
      start_ += end;
      scanned_ = start_;
      if (st != response_reader::head_status::ok) return head_outcome{make_error_code(proxy_errc::bad_response)};
      raw_begin_ = start_;
      raw_end_ = filled_;
      return head_outcome{};
    }
  }

 private:
  // The response was read to its end: keep the connection for the next
  // request, unless the backend said close or sent more than it should.
  void settle() noexcept {
    if (!conn_.is_open()) return;
    if (reader_.reusable() && !aborted_ && !timed_out_ && !write_failed_)
      pool_.give_back(std::move(conn_));
    else conn_.close();
  }

  void discard() noexcept {
    if (conn_.is_open()) {
      core::bump(pool_.stats().discarded);
      conn_.close();
    }
  }

  std::pair<std::error_code, std::string_view> fail(proxy_errc e) noexcept {
    return fail(make_error_code(e));
  }
  std::pair<std::error_code, std::string_view> fail(std::error_code e) noexcept {
    failed_ = e;
    discard();
    return {failed_, {}};
  }

  bool upgrade_ = false;
  bool switched_ = false;
  upstream_pool& pool_;
  buffer_pool& buffers_;
  const proxy_options& opts_;
  core::arena& mem_;
  upstream_connection conn_;
  response_reader reader_;
  char* pooled_;  // from buffers_ once needed, given back by the destructor
  char* buf_;     // first block_ or arena_buf_, then pooled_ (or a larger arena buffer for a huge head)
  std::size_t cap_;
  pending_read* block_ = nullptr;  // the first read's block (watched or lent), held until the destructor
  char* arena_buf_ = nullptr;      // the first read when the pool could lend no block
  std::size_t raw_begin_ = 0;  // body bytes that came with the head: buf_[raw_begin_, raw_end_)
  std::size_t raw_end_ = 0;
  std::size_t pending_ = 0;    // decoded bytes at buf_[0, pending_) not yet handed out
  // Reading the head: buf_[0, filled_) received, heads before start_
  // consumed (interim ones), buf_[start_, scanned_) searched for its end.
  std::size_t start_ = 0;
  std::size_t filled_ = 0;
  std::size_t scanned_ = 0;
  std::error_code failed_;
  bool aborted_ = false;
  bool client_left_ = false;
  bool timed_out_ = false;
  bool write_failed_ = false;  // the request was not all written: the response is the connection's last
};

// A member as configured: its URL parsed (a name not resolved) and weight.
struct member_spec {
  std::string url;
  backend_address address;
  std::uint32_t weight = 1;
};

// One address to send to: a numeric member, or one address of a named one
// (key "URL (ADDRESS)"; its Host and X-Forwarded-Host stay the name's).
struct member_target {
  std::string key;
  backend_address address;
  std::uint32_t weight = 1;
};

// The members `specs` stand for now: each name expanded to its addresses
// in `names`, at most max_members in all (the first ones, in order).
std::vector<member_target> expand(const std::vector<member_spec>& specs, const name_table* names) {
  std::vector<member_target> out;
  for (const auto& s : specs) {
    if (s.address.host.empty()) {
      out.push_back({s.url, s.address, s.weight});
    } else if (names != nullptr) {
      for (const auto& a : names->addresses(s.address.host)) {
        member_target t{s.url + " (" + a.to_string() + ")", s.address, s.weight};
        t.address.endpoint = asio::ip::tcp::endpoint(a, s.address.port);
        out.push_back(std::move(t));
      }
    }
  }
  if (out.size() > max_members) out.resize(max_members);
  return out;
}

// One member of this worker's group: its address, its own pool of
// connections, its shared state (health, figures) and the requests this
// worker has in flight on it (least request, and a route with names, whose
// members may leave while requests still use them).
struct member {
  member(asio::io_context& io, member_target t, const proxy_options& opts, std::shared_ptr<member_state> st)
      : key(std::move(t.key)),
        address(std::move(t.address)),
        pool(io, address.endpoint, pool_limits{opts.max_idle, opts.idle_timeout, opts.connect_timeout}, opts.stats,
             address.tls ? opts.tls : nullptr, address.tls_name()),
        state(std::move(st)) {}
  std::string key;
  backend_address address;
  upstream_pool pool;
  std::shared_ptr<member_state> state;
  std::int64_t in_flight = 0;
};

// Holds a member for one request, in the request arena: its in-flight count
// drops when the request ends (the response streamed, or abandoned).
struct member_lease {
  explicit member_lease(member& m) noexcept : m_(m) { ++m_.in_flight; }
  ~member_lease() { --m_.in_flight; }
  member_lease(const member_lease&) = delete;
  member_lease& operator=(const member_lease&) = delete;
  member& m_;
};

// The failures that count against a member's passive health: it could not
// be reached, said nothing in time, or answered with a broken head. (Which
// of them may send the request to another member is decided in await().)
bool counts_against_member(std::error_code err) noexcept {
  return err == proxy_errc::connect_refused || err == proxy_errc::connect_timeout ||
         err == proxy_errc::closed_before_response || err == proxy_errc::response_timeout ||
         err == proxy_errc::bad_response || err == proxy_errc::response_head_too_large ||
         err == proxy_errc::tls_handshake_failed || err == proxy_errc::tls_verify_failed;
}

std::vector<core::backend_member> as_backend_members(const std::vector<member_target>& targets) {
  std::vector<core::backend_member> out;
  out.reserve(targets.size());
  for (const auto& t : targets) out.push_back({t.key, t.weight});
  return out;
}

class proxy_layer final : public http::layer {
 public:
  proxy_layer(net::worker_env& env, proxy_options opts, std::vector<member_spec> specs,
              std::vector<member_target> targets, std::vector<std::shared_ptr<member_state>> states,
              std::uint64_t names_version)
      : opts_(std::move(opts)),
        balancer_(opts_.balance, weights_of(targets), seed_of(env)),
        budget_(opts_.retry_budget_percent, opts_.retry_min_per_second),
        specs_(std::move(specs)),
        buffers_(opts_.buffer_size, std::min<std::uint32_t>(opts_.max_idle, max_idle_buffers)),
        io_(*env.io),
        worker_index_(env.index),
        workers_(env.cfg != nullptr && env.cfg->threads > 0 ? env.cfg->threads : 1) {
    for (const auto& sp : specs_)
      if (!sp.address.host.empty()) named_ = true;
    names_seen_ = names_version;
    members_.reserve(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i)
      members_.push_back(std::make_unique<member>(*env.io, std::move(targets[i]), opts_, std::move(states[i])));
    group_ = members_.size() > 1;
    env.on_drain.push_back([this] {
      draining_ = true;
      for (auto& m : members_) m->pool.drain();
      for (auto& m : retired_) m->pool.drain();
    });
    // Active checks: each member is checked by one worker only, chosen by
    // its key (checked_here()).
    if (!opts_.check.path.empty()) {
      checker_list_ = std::make_shared<std::vector<checker_entry>>();
      add_checkers(*checker_list_);
      // Started on the worker's thread (the chain may be built on another
      // during a reload); stopped there when the chain drains.
      asio::post(io_, [w = std::weak_ptr(checker_list_)] {
        if (auto l = w.lock())
          for (auto& c : *l) start(c.checker);
      });
      env.on_drain.push_back([list = checker_list_] {
        for (auto& c : *list) stop(*c.checker);
        list->clear();
      });
    }
    // Named members follow the names at each of the worker's sweeps too,
    // not only before a request: a worker the route's requests do not reach
    // would otherwise keep the members of an address that left (still
    // listed in the metrics, their idle connections to it kept), keep a
    // retired member whose last request has ended, and never start the
    // checks of the new members it is assigned (checked_here()), which no
    // other worker makes.
    if (named_) env.on_sweep.push_back([this] { follow_names(); });
  }

  ~proxy_layer() override {
    // A chain dropped before it ran (a reload that lost its worker) never
    // drained: its checkers stop on the worker's thread.
    if (checker_list_) asio::post(io_, [list = std::move(checker_list_)] {
      for (auto& c : *list) stop(*c.checker);
    });
  }

  // The backend always makes the request wait.
  http::step enter(http::exchange&, http::layer_state&) override { return http::step::wait; }

  asio::awaitable<http::step> await(http::exchange& ex, http::layer_state&) override {
    // A hard abort's terminal cancellation ends the backend exchange with an
    // error value (aborted), never an exception.
    co_await asio::this_coro::throw_if_cancelled(false);
    core::perf_inject::on_request();  // empty unless built with GATEWAY_PERF_INJECT
    auto& mem = ex.mem();
    auto& stats = *opts_.stats;
    if (named_) [[unlikely]] follow_names();
    clock::time_point now{};
    if (group_) {
      now = clock::now();
      budget_.on_request(now);
    }
    std::size_t index = pick(now, balancer::none);
    // A WebSocket handshake keeps its Upgrade and Connection: upgrade
    // (hop-by-hop, so build_request_head dropped them): the backend must see
    // the request to switch (RFC 6455 section 4.1).
    const bool upgrade = is_websocket_upgrade(ex.req);
    http::header_list fields(mem);
    upstream_response* up = nullptr;
    std::error_code err;
    // One deadline for the response head, set at the first send: the retry
    // on a fresh connection and the failover to another member wait within
    // what is left of it, their connects included, and nothing is sent once
    // it has passed (504), so the response timeout bounds the whole wait.
    clock::time_point head_deadline = clock::time_point::max();
    bool out_of_time = false;  // the deadline passed before an attempt could send
    for (bool moved = false;; moved = true) {
      member& m = *members_[index];
      if (named_ || (group_ && opts_.balance == balance_kind::least_request)) mem.make<member_lease>(m);
      ex.ctx.upstream = m.address.authority;
      forward_params params{opts_.strip_prefix, ex.ctx.client_ip, m.address.authority, opts_.upstream_host, ex.ctx.tls};
      std::string_view head = build_request_head(ex.req, params, mem);
      if (upgrade) head = with_upgrade_fields(head, ex.req.headers.value_of("upgrade"), mem);
      up = mem.make<upstream_response>(m.pool, buffers_, opts_, ex.req.method_id == HTTP_HEAD, ex.ctx, upgrade);
      ex.ctx.guard = up;
      // A pooled connection found closed before any response byte is
      // replaced by a fresh one once, when the request is safe to send
      // again (RFC 9112 section 9.3.1). (Inline rather than a coroutine of
      // its own: a frame per request less.)
      bool sent_nothing = false;
      clock::time_point sent_at{};
      for (int attempt = 0; attempt < 2; ++attempt) {
        const bool reused = attempt == 0 && m.pool.take(up->connection());
        if (reused) {
          core::bump(stats.reused);
        } else {
          auto limit = std::chrono::nanoseconds::max();
          if (head_deadline != clock::time_point::max()) {
            limit = head_deadline - core::coarse_steady_now();
            out_of_time = limit <= std::chrono::nanoseconds::zero();
          }
          err = out_of_time ? make_error_code(proxy_errc::response_timeout)
                            : co_await m.pool.connect(up->connection(), limit);
          if (err == proxy_errc::connect_timeout && head_deadline != clock::time_point::max() &&
              core::coarse_steady_now() >= head_deadline) {
            err = make_error_code(proxy_errc::response_timeout);
            out_of_time = true;
          }
          if (err) break;
          if (up->aborted()) {
            err = make_error_code(proxy_errc::aborted);
            break;
          }
        }
        if (head_deadline == clock::time_point::max()) {
          head_deadline = core::coarse_steady_now() + opts_.response_timeout;
        } else if (core::coarse_steady_now() >= head_deadline) {
          err = make_error_code(proxy_errc::response_timeout);
          out_of_time = true;
          break;
        }
        core::bump(stats.requests);
        sent_at = clock::now();
        up->begin_exchange(head_deadline);
        std::optional<head_outcome> got;
        {
          // A request without a body is its head alone: one buffer, a
          // plain send (two pieces would be a sendmsg).
          const std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(ex.req.body)};
          const asio::const_buffer head_only = bufs[0];
          net::io_result r;
          if (ex.req.body.empty())
            co_await up->connection().write_into(head_only, r);
          else
            co_await up->connection().write_into(bufs, r);
          got = up->sent(r);
          bool just_sent = true;
          while (!got) {
            asio::mutable_buffer space;
            got = up->head_space(space);
            if (got) break;
            const auto cancel_state = co_await asio::this_coro::cancellation_state;
            if (cancel_state.cancelled() != asio::cancellation_type::none) {
              got = head_outcome{make_error_code(proxy_errc::aborted)};
              break;
            }
            if (pending_read* w = up->connection().watched()) {
              // A pooled connection: its read has been pending since it went
              // idle, into `space` (begin_exchange()).
              if (w->completed()) r = w->result();
              else co_await w->wait(r, up->connection());
              up->connection().unwatch();
            } else {
              co_await up->connection().read_some_into(space, r, just_sent);
            }
            just_sent = false;
            got = up->head_read(r, fields);
          }
        }
        head_outcome o = up->end_exchange(*got);
        err = o.ec;
        sent_nothing = o.sent_nothing;
        if (!err) break;
        up->connection().close();
        const bool retry = reused && !up->aborted() && err == proxy_errc::closed_before_response &&
                           (is_idempotent(ex.req.method_id) || o.sent_nothing);
        if (!retry) break;
        core::bump(stats.retries);
      }
      // The client left during a connect (which then reports aborted).
      if (err && up->client_left()) err = make_error_code(proxy_errc::client_closed);
      now = clock::now();
      m.state->requests.fetch_add(1, std::memory_order_relaxed);
      if (!err) {
        m.state->answered.fetch_add(1, std::memory_order_relaxed);
        m.state->latency_ns.fetch_add((now - sent_at).count(), std::memory_order_relaxed);
        const int status = up->switched() ? 101 : up->reader().status();
        if (status >= 500) failed(m, now);
        else m.state->record_success(now, opts_.health);
        break;
      }
      // A request whose time ran out before it could be sent again is not
      // the member's failure.
      if (err == proxy_errc::aborted || err == proxy_errc::client_closed || out_of_time) break;
      if (!counts_against_member(err)) break;
      failed(m, now);
      // Another member takes the request once, if it cannot have been acted
      // on twice and the budget allows (never after a response byte: none
      // has come back). A refused or timed-out connect never reached the
      // backend; a reset before any response byte may have, so only an
      // idempotent request (RFC 9110 section 9.2.2) or one of which nothing
      // was sent goes again.
      const bool never_sent = err == proxy_errc::connect_refused || err == proxy_errc::connect_timeout ||
                              err == proxy_errc::tls_handshake_failed || err == proxy_errc::tls_verify_failed ||
                              sent_nothing;
      const bool may_resend =
          never_sent || (err == proxy_errc::closed_before_response && is_idempotent(ex.req.method_id));
      if (moved || !group_ || !may_resend || up->aborted()) break;
      if (core::coarse_steady_now() >= head_deadline) {
        err = make_error_code(proxy_errc::response_timeout);
        break;
      }
      if (!budget_.try_retry(now)) {
        core::bump(stats.retries_over_budget);
        break;
      }
      ex.ctx.guard = nullptr;
      up->connection().close();
      // The member list may have changed while this request waited (a
      // name's addresses): exclude `m` wherever it is now.
      index = pick(now, index_of(m));
      core::bump(stats.failovers);
    }
    if (!err && up->switched()) {
      ex.res.status = 101;
      for (const auto& f : fields)
        if (!http::is_hop_by_hop(f.name, fields)) ex.res.headers.add(f.name, f.value);
      ex.res.headers.add("Connection", "Upgrade");
      ex.res.headers.add("Upgrade", fields.value_of("upgrade"));
      ex.res.no_body = true;
      auto* t = up->make_tunnel();
      ex.res.upgrade = t;
      ex.ctx.guard = t;
      co_return http::step::answered;
    }
    if (!err && !up->start_body()) err = make_error_code(proxy_errc::bad_response);
    if (err == proxy_errc::client_closed) {
      // Recorded (access log, metrics) as nginx does; the connection sends
      // nothing and closes (net/connection.hpp, client_gone).
      core::bump(stats.client_closed);
      http::respond_text(ex, status_for(err), "Client Closed Request");
      co_return http::step::answered;
    }
    if (err) {
      const int status = status_for(err);
      if (err != proxy_errc::aborted) core::bump(status == 504 ? stats.gateway_timeout : stats.bad_gateway);
      http::respond_text(ex, status, status == 504 ? "Gateway Timeout" : "Bad Gateway");
      co_return http::step::answered;
    }

    const response_reader& reader = up->reader();
    ex.res.status = reader.status();
    ex.res.reason = reader.reason();
    // Without a Connection field (the usual response) only the fixed
    // hop-by-hop names are dropped.
    const bool has_connection = fields.find("connection") != nullptr;
    for (const auto& f : fields)
      if (!(has_connection ? http::is_hop_by_hop(f.name, fields) : http::is_hop_by_hop_name(f.name)))
        ex.res.headers.add(f.name, f.value);
    ex.res.body = {};
    ex.res.stream = up;
    if (reader.no_body()) {
      ex.res.no_body = true;
      // A HEAD response keeps the backend's Content-Length; without one,
      // "chunked" keeps the client connection open (no body is written).
      ex.res.framing = reader.has_content_length() ? http::body_framing::content_length : http::body_framing::chunked;
    } else if (reader.has_content_length()) {
      ex.res.framing = http::body_framing::content_length;
    } else {
      // Chunked or close-delimited upstream: the body is decoded here and
      // re-framed for the client, chunked when it speaks HTTP/1.1, so the
      // client connection survives a close-delimited backend response.
      ex.res.framing = http::body_framing::chunked;
    }
    co_return http::step::answered;
  }

 private:
  // The next member: an available one (not ejected, not marked down), or
  // any when none is (panic).
  std::size_t pick(clock::time_point now, std::size_t exclude) noexcept {
    if (!group_) return 0;
    return balancer_.pick([&](std::size_t i) { return members_[i]->state->available(now); },
                          [&](std::size_t i) { return members_[i]->in_flight; }, exclude);
  }

  static std::vector<std::uint32_t> weights_of(const std::vector<member_target>& targets) {
    std::vector<std::uint32_t> w;
    for (const auto& t : targets) w.push_back(t.weight);
    return w;
  }
  static std::uint64_t seed_of(const net::worker_env& env) noexcept { return 0x9e3779b97f4a7c15ull + env.index; }

  std::size_t index_of(const member& m) const noexcept {
    for (std::size_t i = 0; i < members_.size(); ++i)
      if (members_[i].get() == &m) return i;
    return balancer::none;
  }

  // An active checker of this worker and the member it checks.
  struct checker_entry {
    const member_state* state;  // the member's (a member that stays keeps it)
    std::shared_ptr<health_checker> checker;
  };

  // Whether this worker checks `m`: chosen by the member's key ("URL" or
  // "URL (ADDRESS)"), not its place in the list, so that a member that stays
  // when a name's addresses change keeps its checker, on the same worker.
  bool checked_here(const member& m) const noexcept {
    return std::hash<std::string>{}(m.key) % workers_ == worker_index_ % workers_;
  }

  // Active checkers for the members this worker checks that have none in
  // `out` yet; returns how many were added (at the end of `out`).
  std::size_t add_checkers(std::vector<checker_entry>& out) {
    std::size_t added = 0;
    for (const auto& m : members_) {
      if (!checked_here(*m)) continue;
      if (std::any_of(out.begin(), out.end(), [&](const checker_entry& e) { return e.state == m->state.get(); }))
        continue;
      const backend_address& a = m->address;
      out.push_back({m->state.get(), make_health_checker(io_, a.endpoint, a.authority, m->state, opts_.check,
                                                         a.tls ? opts_.tls : nullptr, a.tls_name())});
      ++added;
    }
    return added;
  }

  // A route with named members, on the worker's thread before each request
  // and at each sweep: retired members with no request left are freed, and
  // when the name table moved, the members become the names' current
  // addresses. A member that stays keeps its pool; one that leaves stops
  // pooling and is freed once no request uses it (requests already on it
  // finish there: nothing in flight is dropped).
  void follow_names() {
    if (!retired_.empty())
      std::erase_if(retired_, [](const std::unique_ptr<member>& m) { return m->in_flight == 0; });
    const std::uint64_t v = opts_.names->version();
    if (v == names_seen_ || draining_) return;
    names_seen_ = v;
    auto targets = expand(specs_, opts_.names.get());
    bool same = targets.size() == members_.size();
    for (std::size_t i = 0; same && i < targets.size(); ++i)
      same = targets[i].key == members_[i]->key && targets[i].address.endpoint == members_[i]->address.endpoint;
    if (same || targets.empty()) return;
    std::vector<std::shared_ptr<member_state>> states;
    try {
      states = opts_.member_states ? opts_.member_states(as_backend_members(targets))
                                   : std::vector<std::shared_ptr<member_state>>{};
    } catch (const std::exception&) {
      return;  // the member registry is full: keep the current members
    }
    std::vector<std::unique_ptr<member>> next;
    next.reserve(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
      auto found = std::find_if(members_.begin(), members_.end(), [&](const std::unique_ptr<member>& m) {
        return m && m->key == targets[i].key && m->address.endpoint == targets[i].address.endpoint;
      });
      if (found != members_.end()) {
        (*found)->state->set_weight(targets[i].weight);
        next.push_back(std::move(*found));
        continue;
      }
      auto st = i < states.size() ? states[i]
                                  : std::make_shared<member_state>(opts_.strip_prefix, targets[i].key, targets[i].weight);
      next.push_back(std::make_unique<member>(io_, std::move(targets[i]), opts_, std::move(st)));
    }
    for (auto& m : members_) {
      if (!m) continue;
      m->pool.drain();
      if (m->in_flight > 0) retired_.push_back(std::move(m));
    }
    members_ = std::move(next);
    group_ = members_.size() > 1;
    std::vector<std::uint32_t> weights;
    for (const auto& m : members_) weights.push_back(m->state->weight());
    balancer_ = balancer(opts_.balance, std::move(weights), 0x9e3779b97f4a7c15ull + worker_index_ + v);
    if (checker_list_) {
      // A member that stays keeps its checker, and with it its count of
      // checks in a row and its schedule: only the checkers of members that
      // left stop, and new members get one.
      std::erase_if(*checker_list_, [&](const checker_entry& e) {
        const bool stays = std::any_of(members_.begin(), members_.end(),
                                       [&](const std::unique_ptr<member>& m) { return m->state.get() == e.state; });
        if (!stays) stop(*e.checker);
        return !stays;
      });
      const std::size_t added = add_checkers(*checker_list_);
      for (std::size_t i = checker_list_->size() - added; i < checker_list_->size(); ++i)
        start((*checker_list_)[i].checker);
    }
  }

  // Passive health: a member is never ejected while it is the last one
  // available (the panic rule covers the rest).
  void failed(member& m, clock::time_point now) noexcept {
    bool others = false;
    for (auto& o : members_)
      if (o.get() != &m && o->state->available(now)) others = true;
    if (m.state->record_failure(now, opts_.health, others)) core::bump(opts_.stats->ejections);
  }

  // Response buffers (32 KiB each, for responses longer than the first
  // read) kept for reuse, at most: the pool of connections may be far larger.
  static constexpr std::uint32_t max_idle_buffers = 256;
  proxy_options opts_;
  balancer balancer_;
  retry_budget budget_;
  bool group_ = false;
  std::vector<member_spec> specs_;
  bool named_ = false;            // some member is a name: follow_names() before each request and each sweep
  std::uint64_t names_seen_ = 0;  // the name table's version the members were built from
  bool draining_ = false;
  std::vector<std::unique_ptr<member>> members_;
  std::vector<std::unique_ptr<member>> retired_;  // left with requests still on them
  buffer_pool buffers_;  // declared after members_: destroyed before their pools, after every request
  asio::io_context& io_;
  unsigned worker_index_;
  unsigned workers_;
  // Active checkers of this worker's members; the drain hook holds it too.
  std::shared_ptr<std::vector<checker_entry>> checker_list_;
};

}  // namespace

proxy_options options_from_config(const core::config& cfg) {
  proxy_options o;
  o.backend_url = cfg.backend;
  o.connect_timeout = cfg.upstream_connect_timeout;
  o.response_timeout = cfg.upstream_timeout;
  o.idle_timeout = cfg.upstream_idle_timeout;
  // auto: as many as this worker may have busy at once (its share of the
  // concurrency cap, as the concurrency limit computes it).
  o.max_idle = cfg.upstream_max_idle != core::config::upstream_max_idle_auto
                   ? cfg.upstream_max_idle
                   : std::max<std::uint32_t>(1, cfg.upstream_max_concurrent / std::max(1u, cfg.threads));
  o.balance = cfg.balance == "least_request" ? balance_kind::least_request : balance_kind::round_robin;
  o.health.eject_after = cfg.eject_after;
  o.health.eject_base = cfg.eject_time;
  o.health.eject_max = std::max(cfg.eject_max, cfg.eject_time);
  o.retry_budget_percent = cfg.retry_budget;
  o.check.path = cfg.health_check;
  o.check.interval = cfg.health_interval;
  o.check.timeout = cfg.health_timeout;
  o.check.healthy = cfg.health_healthy;
  o.check.unhealthy = cfg.health_unhealthy;
  o.tls_options.ca_files = cfg.upstream_ca;
  o.tls_options.insecure = cfg.upstream_insecure;
  return o;
}

http::layer_ptr make_proxy(net::worker_env& env, proxy_options opts) {
  std::vector<core::backend_member> list;
  if (std::string err; !core::parse_backend_list(opts.backend_url, list, err))
    throw std::invalid_argument("backend: " + err);
  std::vector<member_spec> specs;
  std::vector<std::string> hosts;
  for (const auto& m : list) {
    specs.push_back({m.url, parse_backend_url(m.url), m.weight});
    if (!specs.back().address.host.empty()) hosts.push_back(specs.back().address.host);
  }
  if (!hosts.empty()) {
    if (!opts.names) opts.names = std::make_shared<name_table>();
    resolve_names(*opts.names, hosts, dns_options{});  // nothing to do when the caller resolved them
  }
  // The version before the expansion: a change in between is seen again.
  const std::uint64_t seen = opts.names ? opts.names->version() : 0;
  auto targets = expand(specs, opts.names.get());
  if (!opts.stats) opts.stats = std::make_shared<upstream_stats>();
  if (!opts.tls && has_https_member(opts.backend_url)) opts.tls = std::make_shared<upstream_tls>(opts.tls_options);
  std::vector<std::shared_ptr<member_state>> states;
  if (opts.member_states) states = opts.member_states(as_backend_members(targets));
  if (states.size() != targets.size()) {
    states.clear();
    for (const auto& t : targets) states.push_back(std::make_shared<member_state>(opts.strip_prefix, t.key, t.weight));
  }
  if (opts.buffer_size < 4096) opts.buffer_size = 4096;  // more than the first read (2 KiB)
  if (opts.max_response_head < opts.buffer_size) opts.max_response_head = opts.buffer_size;
  return std::make_unique<proxy_layer>(env, std::move(opts), std::move(specs), std::move(targets), std::move(states),
                                       seen);
}

}  // namespace gateway::proxy
