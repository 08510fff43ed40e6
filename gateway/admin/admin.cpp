#include "gateway/admin/admin.hpp"

#include <llhttp.h>

#include <charconv>
#include <string>

#include "gateway/middleware/middleware.hpp"

namespace gateway::admin {

namespace {

// Admin output is built in a std::string owned by the request's arena.
std::string& scratch(http::exchange& ex) {
  auto* s = ex.mem().make<std::string>();
  s->reserve(4096);
  return *s;
}

bool wants_prometheus(const http::exchange& ex) {
  if (auto f = http::query_param(ex.req.query, "format")) return *f == "prometheus" || *f == "openmetrics";
  std::string_view accept = ex.req.headers.value_of("accept");
  return accept.find("text/plain") != std::string_view::npos ||
         accept.find("application/openmetrics-text") != std::string_view::npos;
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

class logs_page final : public http::layer {
 public:
  explicit logs_page(const middleware::log_ring& r) : ring_(r) {}
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
    std::string& out = scratch(ex);
    ring_.render_json(out, limit);
    ex.res.status = 200;
    ex.res.body = out;
    ex.res.headers.set("Content-Type", "application/json");
    ex.res.headers.set("Cache-Control", "no-store");
    return http::step::answered;
  }

 private:
  const middleware::log_ring& ring_;
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

http::layer_ptr make_metrics_page(const middleware::metrics_registry& registry) {
  return std::make_unique<metrics_page>(registry);
}
http::layer_ptr make_logs_page(const middleware::log_ring& ring) { return std::make_unique<logs_page>(ring); }
http::layer_ptr make_logs_clear_page(middleware::log_ring& ring) { return std::make_unique<logs_clear_page>(ring); }

}  // namespace gateway::admin
