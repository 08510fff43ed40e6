#include <llhttp.h>

#include "gateway/json/reader.hpp"
#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

class validation_handler final : public http::handler {
 public:
  validation_handler(const core::validation_rules& rules, http::handler_ptr next)
      : rules_(rules), next_(std::move(next)) {
    // The messages are built once; a request only picks one.
    for (const auto& f : rules_.fields) {
      messages_.push_back({"Missing field: " + f.field, "Field too short: " + f.field, "Field too long: " + f.field});
    }
  }

  asio::awaitable<void> handle(http::exchange& ex) override {
    const bool under_route = ex.req.path.substr(0, rules_.route.size()) == rules_.route;
    if (under_route && (ex.req.method_id == HTTP_POST || ex.req.method_id == HTTP_PUT)) {
      if (const std::string* failure = check(ex.req.body)) {
        http::respond_text(ex, 400, *failure);
        co_return;
      }
    }
    co_await next_->handle(ex);
  }

 private:
  struct field_messages {
    std::string missing, too_short, too_long;
  };

  const std::string* check(std::string_view body) const {
    json::parse_options opts;
    opts.max_depth = 64;
    opts.borrow_text = true;  // the body outlives the parse: its strings are not copied
    auto parsed = json::parse(body, opts);
    if (!parsed || !parsed.value().is_object()) return &invalid_json_;
    const json::value& doc = parsed.value();
    for (std::size_t i = 0; i < rules_.fields.size(); ++i) {
      const auto& rule = rules_.fields[i];
      const json::value* v = doc.find(rule.field);
      if (v == nullptr || v->is_null()) {
        if (rule.required) return &messages_[i].missing;
        continue;
      }
      if (!v->is_string()) continue;  // length rules apply to strings
      std::size_t len = json::utf8_length(v->as_string());
      if (rule.min_len && len < *rule.min_len) return &messages_[i].too_short;
      if (rule.max_len && len > *rule.max_len) return &messages_[i].too_long;
    }
    return nullptr;
  }

  const core::validation_rules& rules_;
  http::handler_ptr next_;
  std::vector<field_messages> messages_;
  std::string invalid_json_ = "Invalid JSON";
};

}  // namespace

http::handler_ptr make_validation(const core::validation_rules& rules, http::handler_ptr next) {
  return std::make_unique<validation_handler>(rules, std::move(next));
}

}  // namespace gateway::middleware
