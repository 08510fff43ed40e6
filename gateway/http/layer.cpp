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

pipeline::walk::walk(const pipeline& p, exchange& ex) : p_(p), ex_(ex), layers_(p.outer_) { advance(); }

pipeline::walk::~walk() {
  while (depth_ > 0) {
    --depth_;
    entered_[depth_]->leave(ex_, state_at(depth_));
  }
}

void pipeline::walk::resume(step s) {
  layer* l = waiting_;
  waiting_ = nullptr;
  if (s != step::next) return;
  entered_[depth_++] = l;
  ++next_;
  advance();
}

void pipeline::walk::advance() {
  for (;;) {
    while (next_ < layers_.size()) {
      layer* l = layers_[next_].get();
      layer_state& state = *::new (static_cast<void*>(&states_[depth_])) layer_state();
      const step s = l->enter(ex_, state);
      if (s == step::wait) {
        waiting_ = l;
        return;
      }
      if (s != step::next) return;
      entered_[depth_++] = l;
      ++next_;
    }
    if (routed_) {
      respond_text(ex_, 500, "internal error: the route did not answer");
      return;
    }
    layers_ = p_.routes_->select(ex_);
    next_ = 0;
    routed_ = true;
  }
}

asio::awaitable<void> pipeline::run(exchange& ex) const {
  walk w(*this, ex);
  while (w.waiting()) w.resume(co_await w.await());
}

}  // namespace gateway::http
