#include "gateway/proxy/concurrency_limit.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace gateway::proxy {

namespace {

class limit_layer final : public http::layer {
 public:
  limit_layer(concurrency_limit_options opts, core::stat* rejected) : opts_(opts), rejected_(rejected) {}

  http::step enter(http::exchange&, http::layer_state&) override {
    if (in_flight_ >= opts_.max_in_flight) return http::step::wait;
    ++in_flight_;
    return http::step::next;
  }

  asio::awaitable<http::step> await(http::exchange& ex, http::layer_state&) override {
    const bool handed_over = co_await wait_for_slot(ex);  // the slot comes with it
    if (handed_over) co_return http::step::next;
    if (rejected_) core::bump(*rejected_);
    http::respond_text(ex, 503, "backend busy: too many requests in flight, retry");
    ex.res.headers.add("Retry-After", "1");
    co_return http::step::answered;
  }

  // A response that streams from the backend (or a tunnel) holds its
  // backend connection after the chain is done, so the slot is kept until
  // the request is over. The slot goes straight to the oldest waiter, so a
  // newcomer cannot take it between the wake-up and the waiter's
  // resumption.
  void leave(http::exchange& ex, http::layer_state&) override {
    if ((ex.res.stream != nullptr || ex.res.upgrade != nullptr) && ex.ctx.at_end == nullptr) {
      ex.ctx.at_end = &limit_layer::release;
      ex.ctx.at_end_arg = this;
      return;
    }
    release_slot();
  }

 private:
  static void release(void* self) noexcept { static_cast<limit_layer*>(self)->release_slot(); }
  void release_slot() noexcept {
    if (!hand_over()) --in_flight_;
  }

  // A waiter is a timer in the request's arena, linked in arrival order.
  struct waiter {
    explicit waiter(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    waiter* next = nullptr;
    bool woken = false;
  };

  asio::awaitable<bool> wait_for_slot(http::exchange& ex) {
    if (waiting_ >= opts_.max_waiters) co_return false;
    auto* w = ex.mem().make<waiter>(co_await asio::this_coro::executor);
    w->timer.expires_after(opts_.queue_timeout);
    if (tail_) tail_->next = w;
    else head_ = w;
    tail_ = w;
    ++waiting_;
    auto [ec] = co_await w->timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    (void)ec;
    unlink(w);
    co_return w->woken;
  }

  void unlink(waiter* w) noexcept {
    waiter* prev = nullptr;
    for (waiter* p = head_; p != nullptr; prev = p, p = p->next) {
      if (p != w) continue;
      if (prev) prev->next = p->next;
      else head_ = p->next;
      if (tail_ == p) tail_ = prev;
      --waiting_;
      return;
    }
  }

  bool hand_over() noexcept {
    for (waiter* p = head_; p != nullptr; p = p->next) {
      if (!p->woken) {
        p->woken = true;
        p->timer.cancel();
        return true;
      }
    }
    return false;
  }

  concurrency_limit_options opts_;
  core::stat* rejected_;
  std::uint32_t in_flight_ = 0;
  std::uint32_t waiting_ = 0;
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
};

}  // namespace

http::layer_ptr make_concurrency_limit(concurrency_limit_options opts, core::stat* rejected) {
  return std::make_unique<limit_layer>(opts, rejected);
}

}  // namespace gateway::proxy
