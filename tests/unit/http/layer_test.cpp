#include "gateway/http/layer.hpp"

#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <stdexcept>
#include <string>
#include <vector>

using namespace gateway;

namespace {

struct trace_state {
  int token;
};

// Records its calls in `trace`; answers in enter() with `answer` when it is
// non-zero; with `wait`, decides in await() after one turn of the loop.
class tracing_layer final : public http::layer {
 public:
  tracing_layer(std::string name, std::vector<std::string>& trace, int answer = 0, bool wait = false)
      : name_(std::move(name)), trace_(trace), answer_(answer), wait_(wait) {}

  http::step enter(http::exchange& ex, http::layer_state& state) override {
    trace_.push_back(name_ + ".enter");
    token_ = static_cast<int>(name_.size()) * 7 + static_cast<int>(trace_.size());
    state.emplace<trace_state>(token_);
    if (wait_) return http::step::wait;
    return decide(ex);
  }

  asio::awaitable<http::step> await(http::exchange& ex, http::layer_state& state) override {
    // A real suspension: the request resumes from the event loop.
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    trace_.push_back(name_ + ".await" + (state.get<trace_state>().token == token_ ? "" : "(lost state)"));
    co_return decide(ex);
  }

  void leave(http::exchange& ex, http::layer_state& state) override {
    trace_.push_back(name_ + ".leave" + (state.get<trace_state>().token == token_ ? "" : "(lost state)") + ":" +
                     std::to_string(ex.res.status));
  }

 private:
  http::step decide(http::exchange& ex) {
    if (answer_ == 0) return http::step::next;
    ex.res.status = answer_;
    return http::step::answered;
  }

  std::string name_;
  std::vector<std::string>& trace_;
  int answer_;
  bool wait_;
  int token_ = 0;
};

class fixed_routes final : public http::dispatcher {
 public:
  explicit fixed_routes(http::layer_list route) : route_(std::move(route)) {}
  std::span<const http::layer_ptr> select(http::exchange& ex) override {
    ex.ctx.route = "/fixed/";
    return route_;
  }
  std::size_t max_route_depth() const noexcept override { return route_.size(); }

 private:
  http::layer_list route_;
};

template <class... L>
http::layer_list layers(L... l) {
  http::layer_list out;
  (out.push_back(std::move(l)), ...);
  return out;
}

http::layer_ptr traced(std::string name, std::vector<std::string>& trace, int answer = 0, bool wait = false) {
  return std::make_unique<tracing_layer>(std::move(name), trace, answer, wait);
}

struct test_exchange {
  core::arena mem;
  http::exchange ex;
  test_exchange() {
    ex.req.headers = http::header_list(mem);
    ex.res.headers = http::header_list(mem);
    ex.ctx.mem = &mem;
    ex.res.status = 0;
  }
};

void run(const http::pipeline& p, http::exchange& ex) {
  asio::io_context io;
  asio::co_spawn(io, p.run(ex), asio::detached);
  io.run();
}

}  // namespace

TEST_CASE("layers enter in order, the route's after the outer ones, and leave in reverse", "[unit][http]") {
  std::vector<std::string> trace;
  http::pipeline p(layers(traced("a", trace), traced("b", trace)),
                   std::make_unique<fixed_routes>(layers(traced("c", trace), traced("end", trace, 200))));
  test_exchange t;
  run(p, t.ex);
  CHECK(trace == std::vector<std::string>{"a.enter", "b.enter", "c.enter", "end.enter", "c.leave:200", "b.leave:200",
                                          "a.leave:200"});
  CHECK(t.ex.ctx.route == "/fixed/");
}

TEST_CASE("a layer that answers skips the inner layers and its own leave, the outer ones still leave",
          "[unit][http]") {
  std::vector<std::string> trace;
  http::pipeline p(layers(traced("a", trace), traced("guard", trace, 401)),
                   std::make_unique<fixed_routes>(layers(traced("end", trace, 200))));
  test_exchange t;
  run(p, t.ex);
  CHECK(trace == std::vector<std::string>{"a.enter", "guard.enter", "a.leave:401"});
  CHECK(t.ex.res.status == 401);
}

TEST_CASE("a layer that waits decides in await with its state intact, then the request goes on", "[unit][http]") {
  std::vector<std::string> trace;
  SECTION("waits, then lets it through") {
    http::pipeline p(layers(traced("a", trace)),
                     std::make_unique<fixed_routes>(layers(traced("slot", trace, 0, true), traced("end", trace, 200))));
    test_exchange t;
    run(p, t.ex);
    CHECK(trace == std::vector<std::string>{"a.enter", "slot.enter", "slot.await", "end.enter", "slot.leave:200",
                                            "a.leave:200"});
  }
  SECTION("waits, then answers itself") {
    http::pipeline p(layers(traced("a", trace)), std::make_unique<fixed_routes>(layers(
                                                     traced("slot", trace, 503, true), traced("end", trace, 200))));
    test_exchange t;
    run(p, t.ex);
    CHECK(trace == std::vector<std::string>{"a.enter", "slot.enter", "slot.await", "a.leave:503"});
  }
}

TEST_CASE("a route that runs out of layers unanswered gets 500, and every layer still leaves", "[unit][http]") {
  std::vector<std::string> trace;
  http::pipeline p(layers(traced("a", trace)), std::make_unique<fixed_routes>(layers(traced("b", trace))));
  test_exchange t;
  run(p, t.ex);
  CHECK(t.ex.res.status == 500);
  CHECK(trace == std::vector<std::string>{"a.enter", "b.enter", "b.leave:500", "a.leave:500"});
}

TEST_CASE("a pipeline deeper than its frame holds is refused when it is built", "[unit][http]") {
  std::vector<std::string> trace;
  http::layer_list outer;
  for (std::size_t i = 0; i + 1 < http::pipeline::max_depth; ++i) outer.push_back(traced("o", trace));
  CHECK_THROWS_AS(http::pipeline(std::move(outer), std::make_unique<fixed_routes>(
                                                       layers(traced("x", trace), traced("end", trace, 200)))),
                  std::invalid_argument);
  http::pipeline fits(layers(traced("o", trace)), std::make_unique<fixed_routes>(layers(traced("end", trace, 200))));
  for (std::size_t i = 2; i < http::pipeline::max_depth; ++i) fits.wrap(traced("w", trace));
  CHECK_THROWS_AS(fits.wrap(traced("one too many", trace)), std::invalid_argument);
}
