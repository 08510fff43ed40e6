#include "gateway/http/layer.hpp"

#include <array>
#include <stdexcept>
#include <string>

namespace gateway::http {

asio::awaitable<step> layer::await(exchange& ex, layer_state&) {
  respond_text(ex, 500, "internal error: a layer asked to wait and cannot");
  co_return step::answered;
}

void layer::leave(exchange&, layer_state&) {}

pipeline::pipeline(layer_list outer, std::unique_ptr<dispatcher> routes)
    : outer_(std::move(outer)), routes_(std::move(routes)) {
  if (!routes_) throw std::invalid_argument("a pipeline needs a router");
  if (outer_.size() + routes_->max_route_depth() > max_depth)
    throw std::invalid_argument("a route has more layers than a pipeline can run (" + std::to_string(max_depth) + ")");
}

void pipeline::wrap(layer_ptr l) {
  if (outer_.size() + 1 + routes_->max_route_depth() > max_depth)
    throw std::invalid_argument("a route has more layers than a pipeline can run (" + std::to_string(max_depth) + ")");
  outer_.insert(outer_.begin(), std::move(l));
}

namespace {

// The layers a request has entered (and must leave), innermost last. Its
// destructor runs their leave(), so an unwinding request still gives back
// what its layers took (a concurrency slot, say).
struct entered_layers {
  exchange& ex;
  std::size_t depth = 0;
  std::array<layer*, pipeline::max_depth> layers{};
  std::array<layer_state, pipeline::max_depth> states;

  explicit entered_layers(exchange& e) : ex(e) {}
  entered_layers(const entered_layers&) = delete;
  entered_layers& operator=(const entered_layers&) = delete;
  ~entered_layers() {
    while (depth > 0) {
      --depth;
      layers[depth]->leave(ex, states[depth]);
    }
  }
};

}  // namespace

asio::awaitable<void> pipeline::run(exchange& ex) const {
  entered_layers in(ex);
  std::span<const layer_ptr> layers = outer_;
  bool routed = false;
  step s = step::next;
  while (s == step::next) {
    for (const layer_ptr& l : layers) {
      layer_state& state = in.states[in.depth];
      s = l->enter(ex, state);
      if (s == step::wait) {
        const step waited = co_await l->await(ex, state);
        s = waited;
      }
      if (s != step::next) break;
      in.layers[in.depth++] = l.get();
    }
    if (s != step::next) break;
    if (routed) {
      respond_text(ex, 500, "internal error: the route did not answer");
      break;
    }
    layers = routes_->select(ex);
    routed = true;
  }
}

}  // namespace gateway::http
