#include "tests/support/keepalive_load.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <utility>

#include "tests/support/test_server.hpp"

namespace gateway::test {

keepalive_load::keepalive_load(std::uint16_t port, std::string request, int threads, int max_each)
    : request_(std::move(request)) {
  using namespace std::chrono_literals;
  for (int t = 0; t < threads; ++t) {
    threads_.emplace_back([this, port, max_each] {
      auto c = std::make_unique<raw_client>(port, 5000ms);
      for (int i = 0; i < max_each && !stop_; ++i) {
        auto r = c->send(request_) ? c->read_response() : std::nullopt;
        if (!r) {
          ++failed_;
          c = std::make_unique<raw_client>(port, 5000ms);
          continue;
        }
        ++done_;
        if (r->status != 200) ++failed_;
      }
    });
  }
}

keepalive_load::~keepalive_load() { stop(); }

void keepalive_load::stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

}  // namespace gateway::test
