#include "gateway/http/handler.hpp"

#include <array>
#include <cstring>

namespace gateway::http {

handler_ptr compose(std::vector<middleware> layers, handler_ptr terminal) {
  handler_ptr h = std::move(terminal);
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) h = (*it)(std::move(h));
  return h;
}

asio::awaitable<void> answered() { co_return; }

namespace {

// Runs its hooks' before() in order, the next layer, then their after() in
// reverse, all in one coroutine frame.
class hook_chain final : public handler {
 public:
  static constexpr std::size_t max_hooks = 8;

  hook_chain(std::unique_ptr<hook> h, handler_ptr next) : next_(std::move(next)) { hooks_.push_back(std::move(h)); }

  // Makes `h` the outermost hook; false (and `h` untouched) when full.
  bool prepend(std::unique_ptr<hook>& h) {
    if (hooks_.size() >= max_hooks) return false;
    hooks_.insert(hooks_.begin(), std::move(h));
    return true;
  }

  asio::awaitable<void> handle(exchange& ex) override {
    std::array<void*, max_hooks> state{};
    std::size_t ran = 0;
    bool through = true;
    for (; ran < hooks_.size(); ++ran) {
      if (!hooks_[ran]->before(ex, state[ran])) {
        through = false;
        break;
      }
    }
    if (through) co_await next_->handle(ex);
    while (ran > 0) {
      --ran;
      hooks_[ran]->after(ex, state[ran]);
    }
  }

 private:
  std::vector<std::unique_ptr<hook>> hooks_;
  handler_ptr next_;
};

}  // namespace

middleware hook_middleware(std::function<std::unique_ptr<hook>()> make) {
  return [make = std::move(make)](handler_ptr next) -> handler_ptr {
    auto h = make();
    if (auto* chain = dynamic_cast<hook_chain*>(next.get()); chain != nullptr && chain->prepend(h)) return next;
    return std::make_unique<hook_chain>(std::move(h), std::move(next));
  };
}

void respond_text(exchange& ex, int status, std::string_view message) {
  auto* p = static_cast<char*>(ex.mem().allocate(message.size() + 1, 1));
  std::memcpy(p, message.data(), message.size());
  p[message.size()] = '\n';
  ex.res.status = status;
  ex.res.stream = nullptr;
  ex.res.body = {p, message.size() + 1};
  ex.res.headers.set("Content-Type", "text/plain; charset=utf-8");
}

void respond_json(exchange& ex, int status, std::string_view json) {
  ex.res.status = status;
  ex.res.stream = nullptr;
  ex.res.body = ex.mem().copy(json);
  ex.res.headers.set("Content-Type", "application/json");
}

}  // namespace gateway::http
