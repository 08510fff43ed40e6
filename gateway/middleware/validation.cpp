#include <llhttp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/core/utf8.hpp"
#include "gateway/json/reader.hpp"
#include "gateway/middleware/middleware.hpp"

namespace gateway::middleware {

namespace {

// A rule's route without its final '/' ("/" is ""), so that matching it is
// a comparison and a segment-boundary check. Request paths arrive
// normalized by the parser (http/request_parser.hpp: unreserved escapes
// decoded, other escapes' hex digits in upper case, runs of '/' merged,
// dot-segments resolved), the same path the router matched, and a rule's
// route is refused at start-up unless it is in that form too
// (core::path_pattern_problem), so bytes compare as paths do.
std::string rule_route(std::string_view route) {
  while (!route.empty() && route.back() == '/') route.remove_suffix(1);
  return std::string(route);
}

// What the body's top-level object says about one checked field name.
struct field_seen {
  std::uint8_t count = 0;  // occurrences, saturating at 2
  json::kind kind = json::kind::null;
  std::size_t length = 0;  // in code points, for a string
};

// The checked field names of a layer's rule sets, each once; a rule refers
// to its name by index.
class field_names {
 public:
  std::size_t add(const std::string& name) {
    for (std::size_t i = 0; i < names_.size(); ++i) {
      if (names_[i] == name) return i;
    }
    names_.push_back(name);
    return names_.size() - 1;
  }
  std::size_t size() const noexcept { return names_.size(); }
  // The index of `key`, or size() when it is not checked.
  std::size_t find(std::string_view key) const noexcept {
    std::size_t i = 0;
    while (i < names_.size() && names_[i] != key) ++i;
    return i;
  }

 private:
  std::vector<std::string> names_;
};

// Records what the body's top-level members say about the checked fields,
// without building a tree of the body (json::scan_object).
class field_recorder final : public json::member_visitor {
 public:
  field_recorder(const field_names& names, field_seen* seen) noexcept : names_(names), seen_(seen) {}

  bool wants(std::string_view key) override {
    current_ = names_.find(key);
    return current_ < names_.size();
  }
  void on_member(const json::member& m) override {
    field_seen& s = seen_[current_];
    if (s.count < 2) ++s.count;
    s.kind = m.value.type();
    if (m.value.is_string()) s.length = core::utf8_length(m.value.as_string());
  }

 private:
  const field_names& names_;
  field_seen* seen_;
  std::size_t current_ = 0;
};

// One --validate (or config-file) rule set, with its messages built once:
// a request only picks one.
class rule_set {
 public:
  rule_set(const core::validation_rules& rules, field_names& names)
      : rules_(rules), route_(rule_route(rules.route)) {
    for (const auto& f : rules_.fields) {
      messages_.push_back({"Missing field: " + f.field, "Field too short: " + f.field, "Field too long: " + f.field,
                           "Duplicate field: " + f.field});
      field_index_.push_back(names.add(f.field));
    }
  }

  // Whether `path` is the rule's route or below it, segment by segment, as
  // the router matches a route's prefix: "/api/users" covers "/api/users"
  // and "/api/users/7", not "/api/usersX".
  bool applies_to(std::string_view path) const noexcept {
    return path.substr(0, route_.size()) == route_ && (path.size() == route_.size() || path[route_.size()] == '/');
  }

  // The failure message for the fields `seen` in a valid body, or null when
  // it passes.
  const std::string* check(const field_seen* seen) const {
    for (std::size_t i = 0; i < rules_.fields.size(); ++i) {
      const auto& rule = rules_.fields[i];
      const field_seen& s = seen[field_index_[i]];
      // A checked field given twice is refused: the backend may read
      // another occurrence than the one checked here (RFC 8259 section 4
      // leaves duplicates open; most readers keep the last).
      if (s.count > 1) return &messages_[i].duplicate;
      if (s.count == 0 || s.kind == json::kind::null) {
        if (rule.required) return &messages_[i].missing;
        continue;
      }
      if (s.kind != json::kind::string) continue;  // length rules apply to strings
      if (rule.min_len && s.length < *rule.min_len) return &messages_[i].too_short;
      if (rule.max_len && s.length > *rule.max_len) return &messages_[i].too_long;
    }
    return nullptr;
  }

 private:
  struct field_messages {
    std::string missing, too_short, too_long, duplicate;
  };
  const core::validation_rules& rules_;
  std::string route_;  // rule_route(rules_.route)
  std::vector<field_messages> messages_;
  std::vector<std::size_t> field_index_;  // per rule: its field's index in the layer's field_names
};

class validation_layer final : public http::layer {
 public:
  explicit validation_layer(const std::vector<const core::validation_rules*>& rules) {
    for (const auto* r : rules) sets_.emplace_back(*r, names_);
  }

  http::step enter(http::exchange& ex, http::layer_state&) override {
    if (ex.req.method_id != HTTP_POST && ex.req.method_id != HTTP_PUT) return http::step::next;
    field_seen* seen = nullptr;
    for (const auto& set : sets_) {
      if (!set.applies_to(ex.req.path)) continue;
      if (seen == nullptr) {
        // The body is read once, for the first rule set that applies: a
        // scan of its top-level members that keeps only what the checked
        // fields need (a few bytes each, in the request arena), so checking
        // a body costs no memory in proportion to it, whatever its shape.
        seen = static_cast<field_seen*>(ex.mem().allocate(names_.size() * sizeof(field_seen), alignof(field_seen)));
        std::uninitialized_value_construct_n(seen, names_.size());
        field_recorder recorder(names_, seen);
        json::parse_options opts;
        opts.max_depth = 64;
        opts.borrow_text = true;  // the body outlives the scan: its strings are not copied
        if (json::scan_object(ex.req.body, opts, recorder)) return answer(ex, invalid_json_);
      }
      if (const std::string* failure = set.check(seen)) return answer(ex, *failure);
    }
    return http::step::next;
  }

 private:
  static http::step answer(http::exchange& ex, const std::string& message) {
    http::respond_text(ex, 400, message);
    return http::step::answered;
  }

  field_names names_;  // before sets_, which add to it
  std::vector<rule_set> sets_;
  std::string invalid_json_ = "Invalid JSON";
};

}  // namespace

http::layer_ptr make_validation(const std::vector<const core::validation_rules*>& rules) {
  return std::make_unique<validation_layer>(rules);
}

}  // namespace gateway::middleware
