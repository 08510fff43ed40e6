#pragma once
// The middleware contract and the loop that runs it.
//
// The seed's middleware was `func(next http.Handler) http.Handler`: code
// before next.ServeHTTP, the call, code after it. A layer is that shape
// unrolled: enter() is the code before the call, leave() the code after it,
// and a pipeline::walk makes the calls from the coroutine that serves the
// request. Unrolled, the chain needs no coroutine frame of its own (under
// load every frame is a heap allocation and a resumption of cold memory),
// and a layer that has nothing to wait for costs two virtual calls instead
// of a coroutine.
//
//   enter(ex, state)   before the inner layers; returns
//                        step::next      go on inwards
//                        step::answered  ex.res is set: the inner layers and
//                                        this layer's leave() are skipped
//                        step::wait      call await(ex, state), which waits
//                                        (for a slot, a backend, a remote
//                                        limiter) and returns next or answered
//   leave(ex, state)   after the inner layers answered, innermost first
//
// The last layer of every route answers (the proxy, an admin page, 404);
// a route that runs out of layers unanswered gets 500.
//
// Per-request state: `state` is a few bytes in the running pipeline's frame,
// private to one layer for one request, that a layer fills in enter() with
// state.emplace<T>(...) and reads in await() and leave() with state.get<T>().
// T is trivially destructible and small (it is never destroyed; what needs
// more room lives in the request arena and the state points there).
//
// Build once, run many: a pipeline and its layers are built per worker at
// start-up (and on reload) and immutable afterwards; they run only on their
// worker's thread, so per-worker state in a layer needs no lock. Nothing
// here allocates per request.
#include <array>
#include <asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <span>
#include <type_traits>
#include <vector>

#include "gateway/http/exchange.hpp"

namespace gateway::http {

enum class step : std::uint8_t { next, answered, wait };

class layer_state {
 public:
  static constexpr std::size_t capacity = 24;

  template <class T, class... Args>
  T& emplace(Args&&... args) noexcept {
    check<T>();
    type_ = &tag<T>;
    return *::new (static_cast<void*>(bytes_)) T{static_cast<Args&&>(args)...};
  }
  template <class T>
  T& get() noexcept {
    check<T>();
    if (type_ != &tag<T>) std::abort();  // a layer read state it did not store: a bug
    return *std::launder(reinterpret_cast<T*>(bytes_));
  }
  // The stored T, or null when enter() stored nothing (or something else).
  template <class T>
  T* find() noexcept {
    check<T>();
    return type_ == &tag<T> ? std::launder(reinterpret_cast<T*>(bytes_)) : nullptr;
  }

 private:
  template <class T>
  static constexpr void check() noexcept {
    static_assert(sizeof(T) <= capacity && alignof(T) <= alignof(std::max_align_t),
                  "layer state must be small; keep larger state in the request arena");
    static_assert(std::is_trivially_destructible_v<T>, "layer state is never destroyed");
  }
  template <class T>
  static constexpr char tag = 0;
  const char* type_ = nullptr;
  alignas(std::max_align_t) std::byte bytes_[capacity];
};

class layer {
 public:
  virtual ~layer() = default;
  virtual step enter(exchange& ex, layer_state& state) = 0;
  // Only for a layer whose enter() returns step::wait.
  virtual asio::awaitable<step> await(exchange& ex, layer_state& state);
  virtual void leave(exchange& ex, layer_state& state);
};

using layer_ptr = std::unique_ptr<layer>;
// Layers in the order a request meets them, outermost first.
using layer_list = std::vector<layer_ptr>;

// Chooses the layers that follow the pipeline's outer ones for a request
// (the router: per-route policy and the route's endpoint).
class dispatcher {
 public:
  virtual ~dispatcher() = default;
  virtual std::span<const layer_ptr> select(exchange& ex) = 0;
  // The most layers select() can return.
  virtual std::size_t max_route_depth() const noexcept = 0;
};

class pipeline {
 public:
  // Layers a request can pass through at most (outer + the longest route):
  // the running frame keeps one state per layer entered.
  static constexpr std::size_t max_depth = 13;

  // Throws std::invalid_argument when the outer layers and the deepest
  // route are more than max_depth.
  pipeline(layer_list outer, std::unique_ptr<dispatcher> routes);

  // One request's way through the pipeline, driven by the coroutine that
  // serves the request, so that the chain needs no coroutine frame of its
  // own (a frame per request is a heap block whose memory has gone cold by
  // the time a backend answers):
  //
  //   {
  //     pipeline::walk w(p, ex);                        // enter() inwards
  //     while (w.waiting()) w.resume(co_await w.await());
  //   }                                                 // leave() outwards
  //
  // The constructor and resume() run enter() inwards until a layer must
  // wait or the request is answered; the destructor runs leave() of every
  // layer entered, innermost first (also when the awaiting coroutine is
  // destroyed mid-request, so that what layers took is given back).
  class walk {
   public:
    walk(const pipeline& p, exchange& ex);
    ~walk();
    walk(const walk&) = delete;
    walk& operator=(const walk&) = delete;

    // A layer's enter() returned step::wait: await() must be awaited next.
    bool waiting() const noexcept { return waiting_ != nullptr; }
    asio::awaitable<step> await() { return waiting_->await(ex_, state_at(depth_)); }
    // What the awaited layer returned: next goes on inwards, anything else
    // ends the way in (the request is answered).
    void resume(step s);

   private:
    void advance();
    const pipeline& p_;
    exchange& ex_;
    std::span<const layer_ptr> layers_;  // the outer layers, then the route's
    std::size_t next_ = 0;               // the next one of layers_ to enter
    bool routed_ = false;
    layer* waiting_ = nullptr;
    std::size_t depth_ = 0;  // layers entered (and to leave)
    // Only the first depth_ (+ the one being entered) are written: a request
    // touches the cache lines of the layers it meets, not all max_depth.
    std::array<layer*, max_depth> entered_;
    union state_slot {
      state_slot() noexcept {}
      layer_state state;
    };
    std::array<state_slot, max_depth> states_;
    layer_state& state_at(std::size_t i) noexcept { return states_[i].state; }
  };

  // Runs the request through the outer layers, the layers `routes` selects,
  // and back out (a walk in a coroutine of its own). Never throws for a
  // request's sake.
  asio::awaitable<void> run(exchange& ex) const;

  // Puts `l` outside every other layer. Building only: never once the
  // pipeline runs (a test wraps the gateway's own pipeline this way).
  void wrap(layer_ptr l);

  std::size_t outer_depth() const noexcept { return outer_.size(); }

 private:
  layer_list outer_;
  std::unique_ptr<dispatcher> routes_;
};

}  // namespace gateway::http
