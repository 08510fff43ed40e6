// The guard's client watch as the worker's sweep sees it: a request is
// checked only from the second sweep that finds its watch on, so one
// answered within a sweep period is never looked at.
#include "gateway/http/upstream_guard.hpp"

#include <catch2/catch.hpp>

using namespace gateway;

namespace {

class test_guard final : public http::upstream_guard {
 public:
  void abort() noexcept override {}
  void client_gone() noexcept override {}
  void watch(bool on) noexcept { watch_client(on); }

 private:
  void expire() noexcept override {}
};

}  // namespace

TEST_CASE("upstream guard: the client check is due from the second sweep that finds the watch on", "[unit][http]") {
  test_guard g;
  CHECK_FALSE(g.client_check_due());  // off by default (a tunnel never watches)
  g.watch(true);
  CHECK_FALSE(g.client_check_due());  // first sweep: only marked seen
  CHECK(g.client_check_due());
  CHECK(g.client_check_due());
  g.watch(false);  // the response head is in
  CHECK_FALSE(g.client_check_due());
  g.watch(true);  // watched again: seen anew before it is checked
  CHECK_FALSE(g.client_check_due());
  CHECK(g.client_check_due());
}
