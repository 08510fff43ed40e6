#include "gateway/middleware/rate_limit_store.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <asio/experimental/as_tuple.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <charconv>
#include <cstring>

#include "gateway/net/worker.hpp"

namespace gateway::middleware {

namespace {

using clock = std::chrono::steady_clock;

// KEYS[1]: the client's hash. ARGV[1]: the limit; ARGV[2]: microseconds per
// bucket (window / 60, rounded up); ARGV[3]: the slice asked for (requests
// to count at once, at least 1). Returns {requests granted (0: refused),
// requests left, microseconds until the oldest counted bucket stops
// counting}. A slice larger than 1 is granted only while the client has at
// least 64 times the slice left; below that every request is counted alone,
// so the last ones before the limit are decided one by one.
//
// The hash holds one field per bucket number (its allowed requests), "s"
// (their sum) and "f" (the oldest bucket that holds a count). A call reads
// s and f, subtracts and deletes the buckets that have left the last 61
// (usually none, at most the ones passed since the client's previous
// request: each bucket is passed once), and counts the request in the
// current bucket when s is below the limit: O(1) work per request, not a
// read of the whole window. The key expires 61 buckets after the last
// allowed request, when none of it counts any more. TIME inside a script is
// allowed since Redis 5 (effects are replicated), and one clock for every
// instance is what makes the window the same for all of them.
constexpr std::string_view script_text = R"lua(local key = KEYS[1]
local limit = tonumber(ARGV[1])
local g = tonumber(ARGV[2])
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000000 + tonumber(now[2])
local cur = math.floor(t / g)
local first = cur - 60
local v = redis.call('HMGET', key, 's', 'f')
local total = tonumber(v[1]) or 0
local f = tonumber(v[2]) or cur
local changed = false
if total <= 0 then
  total = 0
  f = cur
else
  while f < first and total > 0 do
    local b = string.format('%d', f)
    local n = redis.call('HGET', key, b)
    if n then
      total = total - tonumber(n)
      redis.call('HDEL', key, b)
    end
    f = f + 1
    changed = true
  end
  if total <= 0 then
    total = 0
    f = cur
  else
    while f < cur and redis.call('HEXISTS', key, string.format('%d', f)) == 0 do
      f = f + 1
      changed = true
    end
  end
end
local allowed = 0
if total < limit then
  allowed = 1
  local want = tonumber(ARGV[3]) or 1
  if want > 1 and limit - total >= want * 64 then allowed = want end
  redis.call('HINCRBY', key, string.format('%d', cur), allowed)
  total = total + allowed
  changed = true
end
if changed then
  redis.call('HSET', key, 's', total, 'f', string.format('%d', f))
  if allowed > 0 then redis.call('PEXPIRE', key, math.ceil(61 * g / 1000)) end
end
local left = limit - total
if left < 0 then left = 0 end
return {allowed, left, (f + 61) * g - t}
)lua";

// "rl:<window>:" + the client: 45 bytes of IPv6 text or "k:"/"h:" + 64 hex digits.
constexpr std::size_t max_key = 112;
// The longest API key the store names (api_key_set::max_key_size: only
// configured keys reach it), for the HMAC's stack buffer.
constexpr std::size_t max_api_key = 4096;
constexpr auto tick_period = std::chrono::milliseconds(50);
constexpr auto connect_limit = std::chrono::seconds(1);
constexpr auto first_backoff = std::chrono::milliseconds(50);
constexpr auto max_backoff = std::chrono::seconds(2);

}  // namespace

std::string_view rate_limit_store_script() noexcept { return script_text; }

// --- health ------------------------------------------------------------

void rate_limit_store_health::connection_ready(std::string_view url) {
  std::lock_guard lock(mu_);
  ++ready_;
  core::bump(stats.connects);
  core::bump(stats.connections);
  if (state_ == state::up) return;
  state_ = state::up;
  stats.up.store(1, std::memory_order_relaxed);
  core::bump(stats.state_changes);
  if (log_)
    std::fprintf(log_, "gateway: rate-limit store %.*s reachable: every instance using it shares the budget\n",
                 static_cast<int>(url.size()), url.data());
}

void rate_limit_store_health::set_down(std::string_view url, std::string_view failure_mode) {
  if (ready_ > 0 || state_ == state::down) return;
  state_ = state::down;
  stats.up.store(0, std::memory_order_relaxed);
  core::bump(stats.state_changes);
  if (log_)
    std::fprintf(log_, "gateway: rate-limit store %.*s unreachable: %s until it is back (reconnecting)\n",
                 static_cast<int>(url.size()), url.data(),
                 failure_mode == "closed" ? "rate-limited routes answer 503"
                                          : "each instance counts in its own table");
}

void rate_limit_store_health::connection_lost(std::string_view url, std::string_view failure_mode, bool closing) {
  std::lock_guard lock(mu_);
  --ready_;
  core::drop(stats.connections);
  if (!closing) set_down(url, failure_mode);
}

void rate_limit_store_health::connect_failed(std::string_view url, std::string_view failure_mode) {
  std::lock_guard lock(mu_);
  set_down(url, failure_mode);
}

// --- one connection ----------------------------------------------------

struct rate_limit_store::connection {
  connection(asio::io_context& io, rate_limit_store& o, std::uint32_t i) : fd(io), owner(&o), index(i) {}
  enum class phase : std::uint8_t { down, connecting, ready };
  redisAsyncContext* ac = nullptr;
  asio::posix::stream_descriptor fd;
  rate_limit_store* owner;
  std::uint32_t index;
  std::uint64_t generation = 0;  // bumped when `ac` goes: stale completions are ignored
  bool want_read = false, want_write = false, read_armed = false, write_armed = false;
  phase ph = phase::down;
  clock::time_point deadline{};       // connecting: give up at; down: try again at
  clock::time_point last_progress{};  // last answer (or the first command since the last one)
  std::uint32_t outstanding = 0;      // checks sent, not answered
  std::chrono::milliseconds backoff = first_backoff;
};

// --- one request's check -------------------------------------------------

struct rate_limit_store::slot {
  slot(asio::io_context& io, rate_limit_store& o, std::uint32_t i) : timer(io), owner(&o), index(i) {}
  asio::steady_timer timer;
  rate_limit_store* owner;
  std::uint32_t index;
  std::uint32_t conn = 0;
  rate_limit_decision result{};
  bool waiting = false;        // a request waits (or will) in finish()
  bool reply_pending = false;  // hiredis holds a callback for it
  bool replied = false;
  bool ok = false;
  bool retried = false;  // NOSCRIPT: sent again with EVAL once
  std::uint8_t key_len = 0;
  std::uint8_t want_len = 0;
  char want[4];  // the slice asked for, as text
  char key[max_key];
};

// --- one client's slice ----------------------------------------------------

struct rate_limit_store::slice {
  std::uint8_t key_len = 0;  // 0: unused
  char key[max_key];
  std::uint32_t tokens = 0;  // requests of the last grants this worker may still allow
  std::uint32_t next = 1;    // the slice to ask for next
  std::uint32_t left = 0;    // what Redis said was left after the last grant
  std::chrono::seconds reset{1};
  clock::time_point expires{};  // tokens lapse at this time (a bucket after the grant)
};

rate_limit_store::slice& rate_limit_store::slice_for(const char* key, std::size_t len) noexcept {
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (std::size_t i = 0; i < len; ++i) h = (h ^ static_cast<unsigned char>(key[i])) * 16777619u;
  return slices_[h % slice_table_size];
}

std::shared_ptr<rate_limit_store> rate_limit_store::make(asio::io_context& io, rate_limit_store_options opts,
                                                         rate_limit_store_health& health, const net::worker* owner) {
  std::shared_ptr<rate_limit_store> s(new rate_limit_store(io, std::move(opts), health, owner));
  // Connecting happens on the worker's thread; if the worker never runs
  // again, the post is dropped with the io_context and nothing starts.
  asio::post(io, [w = std::weak_ptr<rate_limit_store>(s)] {
    if (auto self = w.lock()) self->begin();
  });
  return s;
}

rate_limit_store::rate_limit_store(asio::io_context& io, rate_limit_store_options opts,
                                   rate_limit_store_health& health, const net::worker* owner)
    : io_(io), opts_(std::move(opts)), health_(health), owner_(owner), tick_(io) {
  const auto window_us = std::max<std::int64_t>(
      60, std::chrono::ceil<std::chrono::microseconds>(opts_.window).count());
  key_prefix_ = "rl:" + std::to_string(window_us) + ":";
  if (!opts_.key_secret.empty()) {
    // RFC 2104: a secret longer than the block is hashed first.
    std::array<unsigned char, 64> k{};
    if (opts_.key_secret.size() > k.size())
      SHA256(reinterpret_cast<const unsigned char*>(opts_.key_secret.data()), opts_.key_secret.size(), k.data());
    else
      std::memcpy(k.data(), opts_.key_secret.data(), opts_.key_secret.size());
    for (std::size_t i = 0; i < k.size(); ++i) {
      hmac_inner_[i] = static_cast<unsigned char>(k[i] ^ 0x36);
      hmac_outer_[i] = static_cast<unsigned char>(k[i] ^ 0x5c);
    }
  }
  granularity_ = std::to_string((window_us + 59) / 60);
  limit_ = std::to_string(opts_.limit);
  slots_ = std::make_unique<std::unique_ptr<slot>[]>(max_in_flight);
  free_ = std::make_unique<std::uint32_t[]>(max_in_flight);
  for (std::uint32_t i = 0; i < max_in_flight; ++i) {
    slots_[i] = std::make_unique<slot>(io, *this, i);
    free_[free_count_++] = max_in_flight - 1 - i;
  }
  conns_ = std::make_unique<std::unique_ptr<connection>[]>(opts_.connections);
  for (std::uint32_t i = 0; i < opts_.connections; ++i) conns_[i] = std::make_unique<connection>(io, *this, i);
  slices_ = std::make_unique<slice[]>(slice_table_size);
  bucket_ = std::chrono::microseconds((window_us + 59) / 60);
}

rate_limit_store::~rate_limit_store() {
  // Frees the contexts (their pending callbacks run with no reply and only
  // touch slots, still alive here).
  closed_ = true;
  close_all();
}

void rate_limit_store::begin() {
  if (draining_ || closed_) return;
  for (std::uint32_t i = 0; i < opts_.connections; ++i) connect(*conns_[i]);
  arm_tick();
}

void rate_limit_store::arm_tick() {
  tick_.expires_after(tick_period);
  tick_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec || self->closed_) return;
    self->tick();
  });
}

void rate_limit_store::tick() {
  const auto now = clock::now();
  if (draining_) {
    const bool requests_left = free_count_ != max_in_flight;
    const bool worker_busy = owner_ != nullptr && owner_->draining() && owner_->connection_count() > 0;
    if (!requests_left && !worker_busy) {
      closed_ = true;
      close_all();
      return;  // no more ticks: the io_context can run dry
    }
  }
  const auto stall_limit = std::max<clock::duration>(std::chrono::milliseconds(200), opts_.timeout * 20);
  for (std::uint32_t i = 0; i < opts_.connections; ++i) {
    connection& c = *conns_[i];
    switch (c.ph) {
      case connection::phase::down:
        if (!draining_ && now >= c.deadline) connect(c);
        break;
      case connection::phase::connecting:
        if (now >= c.deadline) drop(c);
        break;
      case connection::phase::ready:
        if (c.outstanding > 0 && now - c.last_progress > stall_limit) {
          // Answers may be waiting in the socket while this loop was busy:
          // read them first, so only a Redis that does not answer is dropped.
          redisAsyncHandleRead(c.ac);
          if (c.ac != nullptr && c.outstanding > 0 && clock::now() - c.last_progress > stall_limit) drop(c);
        }
        break;
    }
  }
  arm_tick();
}

std::uint32_t rate_limit_store::ready_connections() const noexcept {
  std::uint32_t n = 0;
  for (std::uint32_t i = 0; i < opts_.connections; ++i) n += conns_[i]->ph == connection::phase::ready;
  return n;
}

// --- the asio adapter for hiredis ------------------------------------------

void rate_limit_store::arm_read(connection& c) {
  if (c.read_armed || c.ac == nullptr) return;
  c.read_armed = true;
  c.fd.async_wait(asio::posix::stream_descriptor::wait_read,
                  [self = shared_from_this(), &c, gen = c.generation](std::error_code ec) {
                    if (gen != c.generation) return;  // that context is gone (and the flags reset)
                    c.read_armed = false;
                    if (ec) {
                      if (ec != asio::error::operation_aborted) self->drop(c);
                      return;
                    }
                    if (c.want_read && c.ac != nullptr) redisAsyncHandleRead(c.ac);
                    if (gen == c.generation && c.want_read) self->arm_read(c);
                  });
}

void rate_limit_store::arm_write(connection& c) {
  if (c.write_armed || c.ac == nullptr) return;
  c.write_armed = true;
  c.fd.async_wait(asio::posix::stream_descriptor::wait_write,
                  [self = shared_from_this(), &c, gen = c.generation](std::error_code ec) {
                    if (gen != c.generation) return;
                    c.write_armed = false;
                    if (ec) {
                      if (ec != asio::error::operation_aborted) self->drop(c);
                      return;
                    }
                    if (c.want_write && c.ac != nullptr) redisAsyncHandleWrite(c.ac);
                    if (gen == c.generation && c.want_write) self->arm_write(c);
                  });
}

void rate_limit_store::on_add_read(void* p) {
  auto& c = *static_cast<connection*>(p);
  c.want_read = true;
  c.owner->arm_read(c);
}
void rate_limit_store::on_del_read(void* p) { static_cast<connection*>(p)->want_read = false; }
void rate_limit_store::on_add_write(void* p) {
  auto& c = *static_cast<connection*>(p);
  c.want_write = true;
  c.owner->arm_write(c);
}
void rate_limit_store::on_del_write(void* p) { static_cast<connection*>(p)->want_write = false; }

// hiredis is freeing the context (error, our drop, or shutdown); it closes
// the socket itself, so the descriptor is released, not closed.
void rate_limit_store::on_cleanup(void* p) {
  auto& c = *static_cast<connection*>(p);
  rate_limit_store& s = *c.owner;
  if (c.fd.is_open()) c.fd.release();  // cancels our waits; their completions see the new generation
  ++c.generation;
  c.ac = nullptr;
  c.want_read = c.want_write = c.read_armed = c.write_armed = false;
  c.outstanding = 0;
  const bool closing = s.closed_ || s.draining_;
  if (c.ph == connection::phase::ready) s.health_.connection_lost(s.opts_.url, s.opts_.failure_mode, closing);
  else if (!closing) s.health_.connect_failed(s.opts_.url, s.opts_.failure_mode);
  c.ph = connection::phase::down;
  c.deadline = clock::now() + c.backoff;
  c.backoff = std::min<std::chrono::milliseconds>(c.backoff * 2, max_backoff);
}

void rate_limit_store::connect(connection& c) {
  if (c.ac != nullptr) return;
  redisAsyncContext* ac = redisAsyncConnect(opts_.address.c_str(), opts_.port);
  if (ac == nullptr || ac->err != 0) {
    if (ac != nullptr) redisAsyncFree(ac);
    health_.connect_failed(opts_.url, opts_.failure_mode);
    c.deadline = clock::now() + c.backoff;
    c.backoff = std::min<std::chrono::milliseconds>(c.backoff * 2, max_backoff);
    return;
  }
  std::error_code ec;
  c.fd.assign(ac->c.fd, ec);
  if (ec) {
    redisAsyncFree(ac);
    health_.connect_failed(opts_.url, opts_.failure_mode);
    c.deadline = clock::now() + c.backoff;
    return;
  }
  c.ac = ac;
  ac->ev.data = &c;
  ac->ev.addRead = &on_add_read;
  ac->ev.delRead = &on_del_read;
  ac->ev.addWrite = &on_add_write;
  ac->ev.delWrite = &on_del_write;
  ac->ev.cleanup = &on_cleanup;
  c.ph = connection::phase::connecting;
  c.deadline = clock::now() + connect_limit;
  // Ready once the script is loaded: that answer proves Redis serves
  // commands (a stopped Redis still completes the TCP handshake).
  if (opts_.db != 0) redisAsyncCommand(ac, &on_select, &c, "SELECT %u", opts_.db);
  redisAsyncCommand(ac, &on_script_loaded, &c, "SCRIPT LOAD %b", script_text.data(), script_text.size());
}

void rate_limit_store::on_select(redisAsyncContext* ac, void* reply, void* p) {
  auto* r = static_cast<redisReply*>(reply);
  if (r != nullptr && r->type == REDIS_REPLY_ERROR) {
    auto& c = *static_cast<connection*>(p);
    if (c.ac == ac) redisAsyncFree(ac);  // deferred by hiredis until this callback returns
  }
}

void rate_limit_store::on_script_loaded(redisAsyncContext* ac, void* reply, void* p) {
  auto& c = *static_cast<connection*>(p);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr || c.ac != ac) return;  // the connection is going away
  if (r->type != REDIS_REPLY_STRING || r->len != 40) {
    redisAsyncFree(ac);
    return;
  }
  rate_limit_store& s = *c.owner;
  s.sha_.assign(r->str, r->len);
  c.ph = connection::phase::ready;
  c.backoff = first_backoff;
  c.last_progress = clock::now();
  s.health_.connection_ready(s.opts_.url);
}

void rate_limit_store::drop(connection& c) noexcept {
  if (c.ac != nullptr) {
    redisAsyncFree(c.ac);  // runs on_cleanup (now, or after the callback that is running)
  }
}

void rate_limit_store::close_all() noexcept {
  tick_.cancel();
  for (std::uint32_t i = 0; i < opts_.connections; ++i)
    if (conns_ && conns_[i]) drop(*conns_[i]);
}

void rate_limit_store::drain() noexcept { draining_ = true; }

// --- checks ----------------------------------------------------------------

rate_limit_store::start_result rate_limit_store::start(std::string_view key, std::uint32_t& out,
                                                      rate_limit_decision& decided) noexcept {
  if (closed_) return start_result::unavailable;
  // The Redis key: an API key as its HMAC-SHA-256 under the shared secret
  // ("h:"), or without one its SHA-256 ("k:"), in hex; never as sent.
  char rkey[max_key];
  std::size_t len = key_prefix_.size();
  std::memcpy(rkey, key_prefix_.data(), len);
  if (key.substr(0, 2) == "k:") {
    const std::string_view api_key = key.substr(2);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    const bool keyed = !opts_.key_secret.empty();
    if (keyed) {
      if (api_key.size() > max_api_key) return start_result::unavailable;
      // HMAC = SHA-256(outer || SHA-256(inner || key)).
      unsigned char buf[64 + max_api_key];
      std::memcpy(buf, hmac_inner_.data(), 64);
      std::memcpy(buf + 64, api_key.data(), api_key.size());
      unsigned char inner[SHA256_DIGEST_LENGTH];
      SHA256(buf, 64 + api_key.size(), inner);
      std::memcpy(buf, hmac_outer_.data(), 64);
      std::memcpy(buf + 64, inner, sizeof inner);
      SHA256(buf, 64 + sizeof inner, digest);
    } else {
      SHA256(reinterpret_cast<const unsigned char*>(api_key.data()), api_key.size(), digest);
    }
    static constexpr char hex[] = "0123456789abcdef";
    rkey[len++] = keyed ? 'h' : 'k';
    rkey[len++] = ':';
    for (unsigned char b : digest) {
      rkey[len++] = hex[b >> 4];
      rkey[len++] = hex[b & 15];
    }
  } else {
    if (len + key.size() > max_key) return start_result::unavailable;
    std::memcpy(rkey + len, key.data(), key.size());
    len += key.size();
  }

  // This worker's slice of the client's budget, if it holds one.
  const auto now = clock::now();
  slice& sl = slice_for(rkey, len);
  std::uint32_t want = 1;
  if (sl.key_len == len && std::memcmp(sl.key, rkey, len) == 0) {
    if (now >= sl.expires) {
      if (sl.tokens > 0) sl.next = std::max<std::uint32_t>(1, sl.next / 2);  // the last slice was too large
      sl.tokens = 0;
      sl.expires = now + bucket_;
    } else if (sl.tokens > 0) {
      --sl.tokens;
      decided = {true, opts_.limit, std::min(opts_.limit, sl.left + sl.tokens), sl.reset};
      core::bump(health_.stats.slice_hits);
      return start_result::decided;
    } else {
      sl.next = std::min(max_slice, sl.next * 2);  // seen again within a bucket: a busy client
    }
    want = sl.next;
  } else {
    // Taken over (or first used): a second request within a bucket asks
    // for a slice.
    std::memcpy(sl.key, rkey, len);
    sl.key_len = static_cast<std::uint8_t>(len);
    sl.tokens = 0;
    sl.next = 1;
    sl.expires = now + bucket_;
  }

  if (free_count_ == 0) return start_result::unavailable;
  connection* c = nullptr;
  for (std::uint32_t n = 0; n < opts_.connections; ++n) {
    connection& cand = *conns_[(next_conn_ + n) % opts_.connections];
    if (cand.ph == connection::phase::ready) {
      c = &cand;
      next_conn_ = (cand.index + 1) % opts_.connections;
      break;
    }
  }
  if (c == nullptr) return start_result::unavailable;
  slot& s = *slots_[free_[free_count_ - 1]];
  std::memcpy(s.key, rkey, len);
  s.key_len = static_cast<std::uint8_t>(len);
  s.want_len = static_cast<std::uint8_t>(std::to_chars(s.want, s.want + sizeof s.want, want).ptr - s.want);
  s.conn = c->index;
  s.retried = false;
  if (!send(*c, s, sha_.empty())) return start_result::unavailable;
  --free_count_;
  s.waiting = true;
  s.reply_pending = true;
  s.replied = false;
  s.ok = false;
  s.timer.expires_after(opts_.timeout);
  out = s.index;
  return start_result::waiting;
}

// A grant of `granted` (0: refused) for the slot's client: what is beyond
// the request that asked joins the client's slice on this worker.
void rate_limit_store::keep_slice(const slot& s, std::uint32_t granted, const rate_limit_decision& d) noexcept {
  slice& sl = slice_for(s.key, s.key_len);
  if (sl.key_len != s.key_len || std::memcmp(sl.key, s.key, s.key_len) != 0) {
    if (granted <= 1) return;
    std::memcpy(sl.key, s.key, s.key_len);
    sl.key_len = s.key_len;
    sl.tokens = 0;
    sl.next = granted;
  }
  if (granted == 0) {
    sl.tokens = 0;
    sl.next = 1;
    return;
  }
  if (granted == 1) return;
  const auto now = clock::now();
  // Tokens already held keep their (earlier) lapse time; none held: the
  // new ones may be used for a bucket from now.
  if (sl.tokens == 0 || now >= sl.expires) {
    sl.tokens = 0;
    sl.expires = now + bucket_;
  }
  sl.tokens += granted - 1;
  sl.left = d.remaining;
  sl.reset = d.reset;
}

bool rate_limit_store::send(connection& c, slot& s, bool with_script) noexcept {
  if (c.ac == nullptr) return false;
  const char* argv[7];
  std::size_t lens[7];
  argv[0] = with_script ? "EVAL" : "EVALSHA";
  lens[0] = with_script ? 4 : 7;
  argv[1] = with_script ? script_text.data() : sha_.data();
  lens[1] = with_script ? script_text.size() : sha_.size();
  argv[2] = "1";
  lens[2] = 1;
  argv[3] = s.key;
  lens[3] = s.key_len;
  argv[4] = limit_.data();
  lens[4] = limit_.size();
  argv[5] = granularity_.data();
  lens[5] = granularity_.size();
  argv[6] = s.want;
  lens[6] = s.want_len;
  if (redisAsyncCommandArgv(c.ac, &on_reply, &s, 7, argv, lens) != REDIS_OK) return false;
  if (c.outstanding++ == 0) c.last_progress = clock::now();
  return true;
}

void rate_limit_store::on_reply(redisAsyncContext* ac, void* reply, void* p) {
  auto& s = *static_cast<slot*>(p);
  rate_limit_store& st = *s.owner;
  connection& c = *st.conns_[s.conn];
  auto* r = static_cast<redisReply*>(reply);
  if (c.ac == ac && c.outstanding > 0) {
    --c.outstanding;
    c.last_progress = clock::now();
  }
  // The script was flushed (SCRIPT FLUSH, or a Redis that lost it): run it
  // by its text on the same connection, once, within the same wait.
  if (r != nullptr && r->type == REDIS_REPLY_ERROR && r->len >= 8 && std::memcmp(r->str, "NOSCRIPT", 8) == 0 &&
      !s.retried && c.ac == ac) {
    s.retried = true;
    if (st.send(c, s, true)) return;
  }
  bool ok = false;
  rate_limit_decision d{};
  if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
      r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER &&
      r->element[2]->type == REDIS_REPLY_INTEGER) {
    ok = true;
    const long long granted = std::clamp<long long>(r->element[0]->integer, 0, max_slice);
    d.allowed = granted > 0;
    d.limit = st.opts_.limit;
    d.remaining = static_cast<std::uint32_t>(std::clamp<long long>(r->element[1]->integer, 0, st.opts_.limit));
    // Whole seconds, rounded up, at least 1 (as the local table says it).
    const long long us = std::max<long long>(0, r->element[2]->integer);
    d.reset = std::chrono::seconds(std::max<long long>(1, us / 1'000'000 + (us % 1'000'000 != 0)));
    st.keep_slice(s, static_cast<std::uint32_t>(granted), d);
  }
  if (!ok) core::bump(st.health_.stats.errors);
  s.reply_pending = false;
  if (s.waiting) {
    s.replied = true;
    s.ok = ok;
    s.result = d;
    s.timer.cancel();
  } else {
    st.release(s);
  }
}

asio::awaitable<std::optional<rate_limit_decision>> rate_limit_store::finish(std::uint32_t index) {
  slot& s = *slots_[index];
  if (!s.replied) {
    auto [ec] = co_await s.timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    (void)ec;  // cancelled by the answer, or expired
  }
  if (!s.replied && s.reply_pending) {
    // Expired: the answer may have arrived in time and be unread because the
    // loop was busy; take what the socket holds now (never waits).
    connection& c = *conns_[s.conn];
    if (c.ac != nullptr) redisAsyncHandleRead(c.ac);
  }
  s.waiting = false;
  std::optional<rate_limit_decision> out;
  if (s.replied && s.ok) {
    out = s.result;
    core::bump(health_.stats.checks);
  } else if (!s.replied) {
    core::bump(health_.stats.timeouts);
  }
  if (!s.reply_pending) release(s);
  co_return out;
}

void rate_limit_store::release(slot& s) noexcept { free_[free_count_++] = s.index; }

}  // namespace gateway::middleware
