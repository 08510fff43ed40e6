#include <llhttp.h>

#include <optional>

#include "gateway/core/utf8.hpp"
#include "gateway/json/reader.hpp"
#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

// One --validate (or config-file) rule set, with its messages built once:
// a request only picks one.
class rule_set {
 public:
  explicit rule_set(const core::validation_rules& rules) : rules_(rules) {
    for (const auto& f : rules_.fields)
      messages_.push_back({"Missing field: " + f.field, "Field too short: " + f.field, "Field too long: " + f.field,
                           "Duplicate field: " + f.field});
  }

  bool applies_to(std::string_view path) const noexcept {
    return path.substr(0, rules_.route.size()) == rules_.route;
  }

  // The failure message for `doc`, or null when it passes.
  const std::string* check(const json::value& doc) const {
    for (std::size_t i = 0; i < rules_.fields.size(); ++i) {
      const auto& rule = rules_.fields[i];
      // A checked field given twice is refused: the backend may read the
      // other occurrence than the one checked here (most JSON readers keep
      // the last, this one's find() the first).
      bool duplicate = false;
      const json::value* v = json::unique_member(doc, rule.field, duplicate);
      if (duplicate) return &messages_[i].duplicate;
      if (v == nullptr || v->is_null()) {
        if (rule.required) return &messages_[i].missing;
        continue;
      }
      if (!v->is_string()) continue;  // length rules apply to strings
      std::size_t len = core::utf8_length(v->as_string());
      if (rule.min_len && len < *rule.min_len) return &messages_[i].too_short;
      if (rule.max_len && len > *rule.max_len) return &messages_[i].too_long;
    }
    return nullptr;
  }

 private:
  struct field_messages {
    std::string missing, too_short, too_long, duplicate;
  };
  const core::validation_rules& rules_;
  std::vector<field_messages> messages_;
};

class validation_layer final : public http::layer {
 public:
  explicit validation_layer(const std::vector<const core::validation_rules*>& rules) {
    for (const auto* r : rules) sets_.emplace_back(*r);
  }

  http::step enter(http::exchange& ex, http::layer_state&) override {
    if (ex.req.method_id != HTTP_POST && ex.req.method_id != HTTP_PUT) return http::step::next;
    const json::value* doc = nullptr;
    std::optional<json::parse_result> parsed;
    for (const auto& set : sets_) {
      if (!set.applies_to(ex.req.path)) continue;
      if (doc == nullptr) {
        // The body is parsed once, for the first rule set that applies.
        json::parse_options opts;
        opts.max_depth = 64;
        opts.borrow_text = true;  // the body outlives the parse: its strings are not copied
        parsed.emplace(json::parse(ex.req.body, opts));
        if (!*parsed || !parsed->value().is_object()) return answer(ex, invalid_json_);
        doc = &parsed->value();
      }
      if (const std::string* failure = set.check(*doc)) return answer(ex, *failure);
    }
    return http::step::next;
  }

 private:
  static http::step answer(http::exchange& ex, const std::string& message) {
    http::respond_text(ex, 400, message);
    return http::step::answered;
  }

  std::vector<rule_set> sets_;
  std::string invalid_json_ = "Invalid JSON";
};

}  // namespace

http::layer_ptr make_validation(const std::vector<const core::validation_rules*>& rules) {
  return std::make_unique<validation_layer>(rules);
}

}  // namespace gateway::middleware
