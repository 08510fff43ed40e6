#include "gateway/admin/admin.hpp"

#include <llhttp.h>

#include <algorithm>
#include <charconv>
#include <string>

#include "gateway/http/negotiation.hpp"
#include "gateway/middleware/middleware.hpp"

namespace gateway::admin {

namespace {

// Admin output is built in a std::string owned by the request's arena.
std::string& scratch(http::exchange& ex) {
  auto* s = ex.mem().make<std::string>();
  s->reserve(4096);
  return *s;
}

// ?format= decides when given; otherwise Accept, with its weights and order
// (RFC 9110 section 12.5.1): the text format only when text/plain or
// application/openmetrics-text is what the client prefers. JSON comes first
// among the offers, so "*/*", no Accept and a tie with JSON (as in
// "application/json, text/plain, */*") get the seed's JSON; so does a field
// that accepts none of them.
bool wants_prometheus(const http::exchange& ex) {
  if (auto f = http::query_param(ex.req.query, "format")) return *f == "prometheus" || *f == "openmetrics";
  static constexpr std::string_view offers[] = {"application/json", "text/plain", "application/openmetrics-text"};
  const std::size_t chosen = http::preferred_media_type(ex.req.headers.value_of("accept"), offers);
  return chosen == 1 || chosen == 2;
}

class metrics_page final : public http::layer {
 public:
  explicit metrics_page(const middleware::metrics_registry& r) : registry_(r) {}
  http::step enter(http::exchange& ex, http::layer_state&) override {
    std::string& out = scratch(ex);
    if (wants_prometheus(ex)) {
      registry_.render_prometheus(out);
      ex.res.status = 200;
      ex.res.body = out;
      ex.res.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    } else {
      registry_.render_json(out);
      ex.res.status = 200;
      ex.res.body = out;
      ex.res.headers.set("Content-Type", "application/json");
    }
    ex.res.headers.set("Cache-Control", "no-store");
    return http::step::answered;
  }

 private:
  const middleware::metrics_registry& registry_;
};

// A place in logs_readers, given back when the request's arena is reset
// (after the response is written, or when the connection goes).
struct logs_reader_place {
  explicit logs_reader_place(logs_readers& r) noexcept : readers(r) {}
  logs_reader_place(const logs_reader_place&) = delete;
  logs_reader_place& operator=(const logs_reader_place&) = delete;
  ~logs_reader_place() { readers.leave(); }
  logs_readers& readers;
};

class logs_page final : public http::layer {
 public:
  logs_page(const middleware::log_ring& r, logs_readers& readers, std::size_t max_bytes)
      : ring_(r), readers_(readers), max_bytes_(max_bytes) {}
  http::step enter(http::exchange& ex, http::layer_state&) override {
    std::size_t limit = ring_.capacity();
    if (auto q = http::query_param(ex.req.query, "limit")) {
      std::size_t n = 0;
      auto r = std::from_chars(q->data(), q->data() + q->size(), n);
      if (r.ec != std::errc{} || r.ptr != q->data() + q->size()) {
        http::respond_text(ex, 400, "limit must be a non-negative integer");
        return http::step::answered;
      }
      limit = std::min(limit, n);
    }
    if (!readers_.try_enter()) {
      http::respond_text(ex, 503, "too many /logs requests at once, retry");
      ex.res.headers.add("Retry-After", "1");
      return http::step::answered;
    }
    try {
      ex.mem().make<logs_reader_place>(readers_);
    } catch (...) {
      readers_.leave();
      throw;
    }
    std::string& out = scratch(ex);
    const middleware::log_render_stats stats = ring_.render_json(out, limit, max_bytes_);
    ex.res.status = 200;
    ex.res.body = out;
    ex.res.headers.set("Content-Type", "application/json");
    ex.res.headers.set("Cache-Control", "no-store");
    if (stats.omitted != 0) ex.res.headers.set("X-Logs-Truncated", ex.mem().copy(std::to_string(stats.omitted)));
    return http::step::answered;
  }

 private:
  const middleware::log_ring& ring_;
  logs_readers& readers_;
  std::size_t max_bytes_;
};

class logs_clear_page final : public http::layer {
 public:
  explicit logs_clear_page(middleware::log_ring& r) : ring_(r) {}
  http::step enter(http::exchange& ex, http::layer_state&) override {
    if (ex.req.method_id != HTTP_POST && ex.req.method_id != HTTP_DELETE) {
      http::respond_text(ex, 405, "Method Not Allowed");
      ex.res.headers.add("Allow", "POST, DELETE");
      return http::step::answered;
    }
    ring_.clear();
    http::respond_json(ex, 200, R"({"status":"cleared"})");
    return http::step::answered;
  }

 private:
  middleware::log_ring& ring_;
};

}  // namespace

bool logs_readers::try_enter() noexcept {
  unsigned n = active_.load(std::memory_order_acquire);
  do {
    if (n >= max_) return false;
  } while (!active_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel));
  return true;
}

http::layer_ptr make_metrics_page(const middleware::metrics_registry& registry) {
  return std::make_unique<metrics_page>(registry);
}
http::layer_ptr make_logs_page(const middleware::log_ring& ring, logs_readers& readers, std::size_t max_bytes) {
  return std::make_unique<logs_page>(ring, readers, max_bytes);
}
http::layer_ptr make_logs_clear_page(middleware::log_ring& ring) { return std::make_unique<logs_clear_page>(ring); }

}  // namespace gateway::admin
