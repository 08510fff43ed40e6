#include "gateway/middleware/header_rules.hpp"

#include <algorithm>
#include <cstring>

#include "gateway/http/syntax.hpp"

namespace gateway::middleware {

namespace {

struct substitution {
  std::string_view name;
  header_template::var v;
};
constexpr substitution substitutions[] = {
    {"client_ip", header_template::var::client_ip},
    {"request_id", header_template::var::request_id},
    {"route", header_template::var::route},
};

std::string_view value_of(header_template::var v, const http::exchange& ex) noexcept {
  switch (v) {
    case header_template::var::client_ip:
      return ex.ctx.client_ip;
    case header_template::var::request_id:
      return ex.ctx.request_id;
    case header_template::var::route:
      return ex.ctx.route;
    case header_template::var::none:
      break;
  }
  return {};
}

enum class direction { request, response };
enum class edit { set, add, remove };

// Why a rule may not touch `name`, or empty when it may.
std::string refusal(std::string_view name, direction d, edit e, bool route_has_cors) {
  if (http::is_hop_by_hop_name(name) || http::iequals(name, "content-length"))
    return "is a hop-by-hop or framing field, which the gateway writes itself";
  if (d == direction::request) {
    if (http::iequals(name, "host"))
      return "the Host sent upstream is the client's, or the backend's with \"host\": \"upstream\"";
    if (http::iequals(name, "x-forwarded-host") || http::iequals(name, "x-forwarded-proto"))
      return "the proxy writes it";
    if (http::iequals(name, "x-forwarded-for") && e != edit::remove)
      return "the proxy appends the client's address to it (\"remove\" makes it start afresh)";
  } else if (route_has_cors && name.size() >= 15 && http::iequals(name.substr(0, 15), "access-control-")) {
    return "the route's \"cors\" settings write the Access-Control-* fields";
  }
  return {};
}

void check_name(const std::string& key, std::string_view name, direction d, edit e, bool cors) {
  if (!http::is_token(name))
    throw std::invalid_argument(key + " '" + std::string(name) + "': not a valid header name");
  if (std::string why = refusal(name, d, e, cors); !why.empty())
    throw std::invalid_argument(key + " '" + std::string(name) + "': cannot be changed here: " + why);
}

header_edit_rules compile_edits(const core::header_edits& in, const std::string& key, direction d,
                                const core::route_config& r) {
  header_edit_rules out;
  const bool cors = r.cors.has_value();
  auto compile_rule = [&](const std::string& part, const std::pair<std::string, std::string>& nv) {
    const std::string where = key + "." + part;
    check_name(where, nv.first, d, part == "set" ? edit::set : edit::add, cors);
    try {
      header_rule rule{nv.first, header_template(nv.second)};
      if (rule.value.uses(header_template::var::route) && !http::is_field_value(r.prefix))
        throw std::invalid_argument("the route's prefix cannot be a header value");
      return rule;
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where + " '" + nv.first + "': " + e.what());
    }
  };
  for (const auto& name : in.remove) {
    check_name(key + ".remove", name, d, edit::remove, cors);
    out.remove.push_back(name);
  }
  for (const auto& nv : in.set) {
    for (const auto& earlier : out.set)
      if (http::iequals(earlier.name, nv.first))
        throw std::invalid_argument(key + ".set '" + nv.first + "': given twice");
    for (const auto& removed : out.remove)
      if (http::iequals(removed, nv.first))
        throw std::invalid_argument(key + ".set '" + nv.first + "': also in \"remove\" (\"set\" replaces it anyway)");
    out.set.push_back(compile_rule("set", nv));
  }
  for (const auto& nv : in.add) out.add.push_back(compile_rule("add", nv));
  return out;
}

class header_rules_layer final : public http::layer {
 public:
  explicit header_rules_layer(const route_header_rules& rules) : rules_(rules) {}

  http::step enter(http::exchange& ex, http::layer_state&) override {
    rules_.request.apply(ex.req.headers, ex);
    return http::step::next;
  }
  void leave(http::exchange& ex, http::layer_state&) override { rules_.response.apply(ex.res.headers, ex); }

 private:
  const route_header_rules& rules_;
};

}  // namespace

header_template::header_template(std::string_view text) {
  std::string_view rest = text;
  std::string literal;
  while (!rest.empty()) {
    const auto open = rest.find("${");
    literal.append(rest.substr(0, open));
    if (open == std::string_view::npos) break;
    const auto close = rest.find('}', open + 2);
    if (close == std::string_view::npos)
      throw std::invalid_argument("'${' without its '}' (substitutions: ${client_ip}, ${request_id}, ${route})");
    const std::string_view name = rest.substr(open + 2, close - open - 2);
    const substitution* found = nullptr;
    for (const auto& s : substitutions)
      if (s.name == name) found = &s;
    if (found == nullptr)
      throw std::invalid_argument("unknown substitution ${" + std::string(name) +
                                  "} (use ${client_ip}, ${request_id} or ${route})");
    if (!literal.empty()) pieces_.push_back({std::move(literal), var::none});
    literal.clear();
    pieces_.push_back({{}, found->v});
    constant_only_ = false;
    rest.remove_prefix(close + 1);
  }
  if (!literal.empty()) pieces_.push_back({std::move(literal), var::none});
  // The substituted values are plain (an address, a sane request id, a
  // checked prefix), so the literal text decides whether the value is one.
  std::string joined;
  for (const auto& p : pieces_) joined += p.v == var::none ? p.text : std::string("x");
  if (!http::is_field_value(joined))
    throw std::invalid_argument("not a valid header value (control bytes, or spaces at either end)");
  if (constant_only_) constant_ = joined;
}

bool header_template::uses(var v) const noexcept {
  return std::any_of(pieces_.begin(), pieces_.end(), [v](const piece& p) { return p.v == v; });
}

std::string_view header_template::expand(const http::exchange& ex) const {
  if (constant_only_) return constant_;
  std::size_t n = 0;
  for (const auto& p : pieces_) n += p.v == var::none ? p.text.size() : value_of(p.v, ex).size();
  char* out = static_cast<char*>(ex.mem().allocate(n, 1));
  std::size_t at = 0;
  for (const auto& p : pieces_) {
    const std::string_view s = p.v == var::none ? std::string_view(p.text) : value_of(p.v, ex);
    if (!s.empty()) std::memcpy(out + at, s.data(), s.size());
    at += s.size();
  }
  return {out, n};
}

void header_edit_rules::apply(http::header_list& fields, const http::exchange& ex) const {
  for (const auto& name : remove) fields.remove(name);
  for (const auto& r : set) fields.set(r.name, r.value.expand(ex));
  for (const auto& r : add) fields.add(r.name, r.value.expand(ex));
}

route_header_rules compile_header_rules(const core::route_config& r) {
  route_header_rules out;
  out.request = compile_edits(r.request_headers, "request_headers", direction::request, r);
  out.response = compile_edits(r.response_headers, "response_headers", direction::response, r);
  return out;
}

void check_request_header_name(const std::string& key, std::string_view name) {
  check_name(key, name, direction::request, edit::set, false);
}

http::layer_ptr make_header_rules(const route_header_rules& rules) {
  return std::make_unique<header_rules_layer>(rules);
}

}  // namespace gateway::middleware
