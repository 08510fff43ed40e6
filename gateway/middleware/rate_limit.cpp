#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "gateway/core/coarse_clock.hpp"
#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

// Written straight into the arena (20 bytes hold any 64-bit number; the
// few left unused go back with the request's arena), not copied there.
std::string_view number(core::arena& mem, std::uint64_t v) {
  auto* p = static_cast<char*>(mem.allocate(20, 1));
  auto r = std::to_chars(p, p + 20, v);
  return std::string_view(p, static_cast<std::size_t>(r.ptr - p));
}

// A number formatted once and copied while it stays the same: the limit
// and the reset of most responses repeat the previous one's. One per layer,
// and a layer serves one worker.
struct formatted_number {
  std::uint64_t value = ~std::uint64_t{0};
  char text[20] = {};
  std::uint8_t size = 0;

  std::string_view in(core::arena& mem, std::uint64_t v) {
    if (v != value) {
      size = static_cast<std::uint8_t>(std::to_chars(text, text + sizeof text, v).ptr - text);
      value = v;
    }
    return mem.copy(std::string_view(text, size));
  }
};

// draft-ietf-httpapi-ratelimit-headers: the client's budget, on every
// limited response.
void add_budget_headers(http::exchange& ex, const rate_limit_decision& d, formatted_number& limit,
                        formatted_number& reset) {
  ex.res.headers.add("RateLimit-Limit", limit.in(ex.mem(), d.limit));
  ex.res.headers.add("RateLimit-Remaining", number(ex.mem(), d.remaining));
  ex.res.headers.add("RateLimit-Reset", reset.in(ex.mem(), static_cast<std::uint64_t>(d.reset.count())));
}

// What enter() leaves for await() while the store decides: the key (in the
// exchange or its arena, alive for the request), the store's slot, and
// whether the local table counts the request under its API key's digest.
struct store_wait {
  const char* key;
  std::uint32_t key_len;
  std::uint32_t slot;
  bool by_digest;
};

// The table's hash of recently seen client addresses, so that the requests
// of a keep-alive connection (and of every connection from one address)
// hash their address once: 64 entries, each picked by a cheap mix of the
// address's last bytes and used only when its stored bytes equal the
// address. An address that changes per request (one taken from a trusted
// proxy's header) or a colliding one is hashed again and replaces the
// entry; a collision costs a hash, never a wrong budget. One per layer,
// and a layer serves one worker: no lock.
class address_hashes {
 public:
  rate_limiter::hashed_key get(rate_limiter& limiter, std::string_view address) noexcept {
    if (address.empty() || address.size() > max_text) return limiter.hash(address);
    std::uint64_t tail = 0;
    if (address.size() >= 8) {
      std::memcpy(&tail, address.data() + address.size() - 8, 8);
    } else {
      for (char c : address) tail = (tail << 8) | static_cast<unsigned char>(c);
    }
    tail ^= address.size();
    entry& e = entries_[static_cast<std::size_t>((tail * 0x9E3779B97F4A7C15ull) >> 58)];
    if (e.size == address.size() && std::memcmp(e.text, address.data(), address.size()) == 0) return e.h;
    e.h = limiter.hash(address);
    std::memcpy(e.text, address.data(), address.size());
    e.size = static_cast<std::uint8_t>(address.size());
    return e.h;
  }

 private:
  static constexpr std::size_t max_text = 46;  // any IPv6 text form; longer ones are not kept
  struct entry {
    rate_limiter::hashed_key h;
    std::uint8_t size = 0;  // 0: empty
    char text[max_text];
  };
  std::array<entry, 64> entries_{};
};

class rate_limit_layer final : public http::layer {
 public:
  rate_limit_layer(rate_limiter& limiter, const api_key_set* keys, metrics_shard& shard,
                   std::vector<std::string> exempt, std::shared_ptr<rate_limit_store> store, bool fail_open)
      : limiter_(limiter),
        keys_(keys),
        shard_(shard),
        exempt_(std::move(exempt)),
        store_(std::move(store)),
        fail_open_(fail_open) {}

  http::step enter(http::exchange& ex, http::layer_state& state) override {
    if (is_exempt(ex.req.path)) return http::step::next;
    std::string_view key = ex.ctx.client_ip;
    bool by_digest = false;
    if (keys_ != nullptr) {
      // The key as the API-key check reads it (a query key decoded), so
      // that one key's spellings (%73ecret, s%65cret) share one budget.
      const std::string_view presented = presented_api_key(ex);
      if (!presented.empty()) {
        // The local table counts the key under the keyed digest the API-key
        // check compares, computed here once and left in the request for it;
        // that digest's key is independent of the table's own, so a key's
        // entry never meets an address's.
        if (ex.ctx.api_key_source != presented) {
          ex.ctx.api_key_digest = api_key_set::digest_of(presented);
          ex.ctx.api_key_source = presented;
        }
        // Only a configured key has a budget of its own (checked with that
        // digest: no second hash). Any other key counts under the client's
        // address, so made-up keys neither buy a client fresh budgets (key
        // guessing, routes without auth) nor fill the table to evict real
        // clients' counts.
        if (keys_->contains(presented, ex.ctx.api_key_digest)) {
          by_digest = true;
          key = presented;
        }
      }
    }
    if (store_) {
      // The shared store names a key by its bytes, prefixed so that an API
      // key can never collide with an IP's bucket.
      if (by_digest) {
        auto* p = static_cast<char*>(ex.mem().allocate(key.size() + 2, 1));
        p[0] = 'k';
        p[1] = ':';
        std::memcpy(p + 2, key.data(), key.size());
        key = std::string_view(p, key.size() + 2);
      }
      std::uint32_t slot = 0;
      rate_limit_decision from_slice{};
      switch (store_->start(key, slot, from_slice)) {
        case rate_limit_store::start_result::waiting:
          state.emplace<store_wait>(store_wait{key.data(), static_cast<std::uint32_t>(key.size()), slot, by_digest});
          return http::step::wait;
        case rate_limit_store::start_result::decided:
          // The local table keeps counting, ready for a fallback.
          (void)count_locally(ex, key, by_digest);
          return decide(ex, state, from_slice);
        case rate_limit_store::start_result::unavailable:
          break;
      }
      return without_store(ex, state, key, by_digest);
    }
    return decide(ex, state, count_locally(ex, key, by_digest));
  }

  asio::awaitable<http::step> await(http::exchange& ex, http::layer_state& state) override {
    const store_wait w = state.get<store_wait>();
    const std::string_view key(w.key, w.key_len);
    const std::optional<rate_limit_decision> d = co_await store_->finish(w.slot);
    if (!d) co_return without_store(ex, state, key, w.by_digest);
    if (d->allowed) (void)count_locally(ex, key, w.by_digest);
    co_return decide(ex, state, *d);
  }

  void leave(http::exchange& ex, http::layer_state& state) override {
    // An exempt path stored no decision and gets no budget headers.
    if (const auto* d = state.find<rate_limit_decision>()) add_budget_headers(ex, *d, limit_text_, reset_text_);
  }

 private:
  http::step decide(http::exchange& ex, http::layer_state& state, const rate_limit_decision& decision) {
    const auto& d = state.emplace<rate_limit_decision>(decision);
    if (d.allowed) return http::step::next;
    core::bump(shard_.stats().rate_limited);
    http::respond_text(ex, 429, "Too Many Requests");
    ex.res.headers.add("Retry-After", number(ex.mem(), static_cast<std::uint64_t>(d.reset.count())));
    add_budget_headers(ex, d, limit_text_, reset_text_);
    return http::step::answered;
  }

  // The store is slow, down or busy: this instance's table decides (open),
  // or the request is refused (closed).
  http::step without_store(http::exchange& ex, http::layer_state& state, std::string_view key, bool by_digest) {
    if (fail_open_) {
      core::bump(store_->stats().fallbacks);
      return decide(ex, state, count_locally(ex, key, by_digest));
    }
    core::bump(store_->stats().unavailable);
    http::respond_text(ex, 503, "rate-limit store unavailable");
    ex.res.headers.add("Retry-After", "1");
    return http::step::answered;
  }

  // One request counted in this instance's table: under the API key's
  // digest that enter() left in the request, or else under the client's
  // address (`key`), whose hash the worker may know already.
  rate_limit_decision count_locally(const http::exchange& ex, std::string_view key, bool by_digest) noexcept {
    const auto now = core::coarse_steady_now();
    if (by_digest) return limiter_.check_digest(ex.ctx.api_key_digest, now);
    // Made on a route's first counted request (4.6 KB), so that routes no
    // traffic takes cost nothing; without memory the address is hashed.
    if (!addresses_) addresses_.reset(new (std::nothrow) address_hashes);
    if (!addresses_) return limiter_.check(key, now);
    return limiter_.check_hashed(addresses_->get(limiter_, key), now);
  }

  // Exact paths (already free of dot-segments: the parser resolved them).
  bool is_exempt(std::string_view path) const noexcept {
    for (const auto& p : exempt_)
      if (p == path) return true;
    return false;
  }

  rate_limiter& limiter_;
  const api_key_set* keys_;  // null: every client is its address
  metrics_shard& shard_;
  std::vector<std::string> exempt_;
  std::shared_ptr<rate_limit_store> store_;
  bool fail_open_;
  formatted_number limit_text_, reset_text_;
  std::unique_ptr<address_hashes> addresses_;
};

}  // namespace

http::layer_ptr make_rate_limit(rate_limiter& limiter, const api_key_set* keys, metrics_shard& shard,
                                std::vector<std::string> exempt, std::shared_ptr<rate_limit_store> store,
                                bool fail_open) {
  // Draws the API keys' digest key now, at start-up, if it is not drawn yet:
  // the one call that can fail. (Not a null view: memcpy of 0 bytes from
  // null is UB.)
  if (keys != nullptr) (void)api_key_set::digest_of(std::string_view("", 0));
  return std::make_unique<rate_limit_layer>(limiter, keys, shard, std::move(exempt), std::move(store), fail_open);
}

}  // namespace gateway::middleware
