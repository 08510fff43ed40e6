#include "gateway/admin/admin.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "gateway/core/arena.hpp"
#include "gateway/json/reader.hpp"

using namespace gateway;

namespace {

// One GET /logs exchange with its own arena, as a connection has.
struct logs_request {
  core::arena mem;
  http::exchange ex;
  explicit logs_request(std::string_view query = {}) {
    ex.ctx.mem = &mem;
    ex.req.headers = http::header_list(mem);
    ex.res.headers = http::header_list(mem);
    ex.req.method = "GET";
    ex.req.path = "/logs";
    ex.req.query = query;
  }
  int run(http::layer& page) {
    http::layer_state state;
    REQUIRE(page.enter(ex, state) == http::step::answered);
    return ex.res.status;
  }
};

void fill(middleware::log_ring& ring, int count) {
  const std::string body(1000, '\x01');
  for (int i = 0; i < count; ++i) {
    middleware::log_entry_view e;
    e.method = "POST";
    e.path = "/nope";
    e.status = 404;
    const std::string id = "id-" + std::to_string(i);
    e.request_id = id;
    e.body = body;
    ring.push(e);
  }
}

}  // namespace

TEST_CASE("/logs: the array stays within its byte cap, newest entries kept, X-Logs-Truncated counts the rest",
          "[unit][admin]") {
  middleware::log_ring ring(middleware::log_ring_options{.capacity = 200});
  fill(ring, 200);
  admin::logs_readers readers;
  constexpr std::size_t cap = 64 * 1024;  // about ten entries of 6 KB
  auto page = admin::make_logs_page(ring, readers, cap);

  logs_request r;
  CHECK(r.run(*page) == 200);
  CHECK(r.ex.res.body.size() <= cap);
  auto doc = json::parse(r.ex.res.body);
  REQUIRE(doc);
  const auto& items = doc.value().items();
  REQUIRE(items.size() >= 5);
  CHECK(items.back().find("request_id")->as_string() == "id-199");
  CHECK(items.front().find("request_id")->as_string() == "id-" + std::to_string(200 - items.size()));
  CHECK(r.ex.res.headers.value_of("X-Logs-Truncated") == std::to_string(200 - items.size()));

  // What fits is not marked.
  logs_request few("limit=3");
  CHECK(few.run(*page) == 200);
  CHECK(json::parse(few.ex.res.body).value().items().size() == 3);
  CHECK(few.ex.res.headers.value_of("X-Logs-Truncated").empty());
}

TEST_CASE("/logs: the seed's default still returns every entry when they fit", "[unit][admin]") {
  middleware::log_ring ring(middleware::log_ring_options{.capacity = 10000});
  fill(ring, 1000);  // about 6 MB of escaped bodies: under the default cap
  admin::logs_readers readers;
  auto page = admin::make_logs_page(ring, readers);
  logs_request r;
  CHECK(r.run(*page) == 200);
  CHECK(r.ex.res.body.size() <= admin::logs_max_bytes);
  CHECK(json::parse(r.ex.res.body).value().items().size() == 1000);
  CHECK(r.ex.res.headers.value_of("X-Logs-Truncated").empty());
}

TEST_CASE("/logs: responses alive at once are bounded, a place given back when the request's memory is released",
          "[unit][admin]") {
  middleware::log_ring ring(middleware::log_ring_options{.capacity = 10});
  fill(ring, 10);
  admin::logs_readers readers(2);
  auto page = admin::make_logs_page(ring, readers);

  auto first = std::make_unique<logs_request>();
  logs_request second;
  CHECK(first->run(*page) == 200);
  CHECK(second.run(*page) == 200);
  CHECK(readers.active() == 2);

  logs_request third;
  CHECK(third.run(*page) == 503);
  CHECK(third.ex.res.headers.value_of("Retry-After") == "1");
  CHECK(readers.active() == 2);

  // A 400 takes no place.
  logs_request bad("limit=x");
  CHECK(bad.run(*page) == 400);
  CHECK(readers.active() == 2);

  first->mem.reset();  // the first response written: its memory released
  CHECK(readers.active() == 1);
  logs_request fourth;
  CHECK(fourth.run(*page) == 200);
  CHECK(readers.active() == 2);
  second.mem.release_first();  // a connection going idle
  fourth.mem.reset();
  CHECK(readers.active() == 0);
}
