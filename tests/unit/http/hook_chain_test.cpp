#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <string>
#include <vector>

#include "gateway/http/handler.hpp"

using namespace gateway;

namespace {

// Records its calls in `trace`; answers with `answer_status` when non-zero.
class tracing_hook final : public http::hook {
 public:
  tracing_hook(std::string name, std::vector<std::string>& trace, int answer_status = 0)
      : name_(std::move(name)), trace_(trace), answer_(answer_status) {}

  bool before(http::exchange& ex, void*& state) override {
    trace_.push_back(name_ + ".before");
    state = this;  // after() must get back what before() left
    if (answer_ != 0) {
      http::respond_text(ex, answer_, name_);
      return false;
    }
    return true;
  }

  void after(http::exchange& ex, void* state) override {
    trace_.push_back(name_ + ".after" + (state == this ? "" : "(lost state)") + ":" +
                     std::to_string(ex.res.status));
  }

 private:
  std::string name_;
  std::vector<std::string>& trace_;
  int answer_;
};

class terminal final : public http::handler {
 public:
  explicit terminal(std::vector<std::string>& trace) : trace_(trace) {}
  asio::awaitable<void> handle(http::exchange& ex) override {
    trace_.push_back("terminal");
    ex.res.status = 200;
    co_return;
  }

 private:
  std::vector<std::string>& trace_;
};

http::middleware traced(std::string name, std::vector<std::string>& trace, int answer = 0) {
  return http::hook_middleware(
      [name, &trace, answer] { return std::make_unique<tracing_hook>(name, trace, answer); });
}

void run(http::handler& h) {
  core::arena mem;
  http::exchange ex;
  ex.req.headers = http::header_list(mem);
  ex.res.headers = http::header_list(mem);
  ex.ctx.mem = &mem;
  asio::io_context io;
  asio::co_spawn(io, h.handle(ex), asio::detached);
  io.run();
}

}  // namespace

TEST_CASE("hook layers run before in order, the next layer, then after in reverse", "[unit][http]") {
  std::vector<std::string> trace;
  std::vector<http::middleware> layers{traced("a", trace), traced("b", trace), traced("c", trace)};
  auto chain = http::compose(std::move(layers), std::make_unique<terminal>(trace));
  run(*chain);
  CHECK(trace == std::vector<std::string>{"a.before", "b.before", "c.before", "terminal", "c.after:200",
                                          "b.after:200", "a.after:200"});
}

TEST_CASE("a hook that answers skips the inner layers and its own after, the outer afters still run",
          "[unit][http]") {
  std::vector<std::string> trace;
  std::vector<http::middleware> layers{traced("a", trace), traced("b", trace, 415), traced("c", trace)};
  auto chain = http::compose(std::move(layers), std::make_unique<terminal>(trace));
  run(*chain);
  CHECK(trace == std::vector<std::string>{"a.before", "b.before", "a.after:415"});
}

TEST_CASE("consecutive hook layers share one handler; more than eight start another", "[unit][http]") {
  std::vector<std::string> trace;
  std::vector<http::middleware> layers;
  for (int i = 0; i < 3; ++i) layers.push_back(traced("h" + std::to_string(i), trace));
  auto* inner = new terminal(trace);
  auto three = http::compose(layers, http::handler_ptr(inner));
  // Three hooks, one wrapper around the terminal: composing a fourth joins it.
  http::handler* wrapper = three.get();
  CHECK(wrapper != inner);
  auto four = traced("h3", trace)(std::move(three));
  CHECK(four.get() == wrapper);

  std::vector<http::middleware> many;
  for (int i = 0; i < 10; ++i) many.push_back(traced("m" + std::to_string(i), trace));
  auto ten = http::compose(std::move(many), std::make_unique<terminal>(trace));
  trace.clear();
  run(*ten);
  REQUIRE(trace.size() == 21);
  CHECK(trace[0] == "m0.before");
  CHECK(trace[9] == "m9.before");
  CHECK(trace[10] == "terminal");
  CHECK(trace[11] == "m9.after:200");
  CHECK(trace[20] == "m0.after:200");
}
