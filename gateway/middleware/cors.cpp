#include "gateway/middleware/cors.hpp"

#include <algorithm>

#include "gateway/http/syntax.hpp"

namespace gateway::middleware {

namespace {

// scheme "://" host [":" port], lowercase, no path: the serialisation a
// browser sends (RFC 6454 section 6.2), so that exact comparison works.
bool is_origin(std::string_view o) {
  const auto sep = o.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  std::string_view scheme = o.substr(0, sep), rest = o.substr(sep + 3);
  if (scheme.front() < 'a' || scheme.front() > 'z') return false;
  for (char c : scheme)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) return false;
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {
    const auto end = rest.find(']');
    if (end == std::string_view::npos || end < 2) return false;
    host = rest.substr(0, end + 1);
    rest.remove_prefix(end + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    port = rest.empty() ? rest : rest.substr(1);
    for (char c : host.substr(1, host.size() - 2))
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.')) return false;
  } else {
    const auto colon = rest.find(':');
    host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (host.empty()) return false;
    for (char c : host)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  }
  if (port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  return true;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += ", ";
    out += i;
  }
  return out;
}

bool names_a_star(const std::vector<std::string>& list, const std::string& key) {
  const bool star = std::find(list.begin(), list.end(), "*") != list.end();
  if (star && list.size() > 1) throw std::invalid_argument(key + ": \"*\" stands alone (it allows any)");
  return star;
}

void check_tokens(const std::vector<std::string>& list, const std::string& key) {
  for (const auto& t : list)
    if (!http::is_token(t)) throw std::invalid_argument(key + " '" + t + "': not a valid name");
}

bool is_cors_field(const http::header_field& f) noexcept {
  return f.name.size() >= 15 && http::iequals(f.name.substr(0, 15), "access-control-");
}

// Adds "Vary: Origin" unless the response already varies on it (or on
// everything).
void vary_on_origin(http::header_list& fields) {
  for (const auto& f : fields)
    if (http::iequals(f.name, "vary") && (http::has_token(f.value, "origin") || http::trim_ows(f.value) == "*"))
      return;
  fields.add("Vary", "Origin");
}

// What enter() learned for leave(): the Access-Control-Allow-Origin value
// for an allowed origin (a view of the policy's own text), else empty.
struct cors_state {
  std::string_view allow_origin;
};

class cors_layer final : public http::layer {
 public:
  cors_layer(const cors_policy& p, metrics_shard& shard) : p_(p), shard_(shard) {}

  http::step enter(http::exchange& ex, http::layer_state& state) override {
    const http::header_field* origin = ex.req.headers.find("origin");
    const std::string_view allow = origin != nullptr ? allowed(origin->value) : std::string_view{};
    if (origin != nullptr && ex.req.method == "OPTIONS" && ex.req.headers.find("access-control-request-method"))
      return preflight(ex, allow);
    state.emplace<cors_state>(allow);
    return http::step::next;
  }

  void leave(http::exchange& ex, http::layer_state& state) override {
    auto& fields = ex.res.headers;
    fields.remove_if(is_cors_field);
    if (!p_.any_origin) vary_on_origin(fields);
    const cors_state* st = state.find<cors_state>();
    if (st == nullptr || st->allow_origin.empty()) return;
    fields.add("Access-Control-Allow-Origin", st->allow_origin);
    if (p_.credentials) fields.add("Access-Control-Allow-Credentials", "true");
    if (!p_.expose_headers.empty()) fields.add("Access-Control-Expose-Headers", p_.expose_headers);
  }

 private:
  // The Access-Control-Allow-Origin answer for `origin`, or empty when it is
  // not allowed.
  std::string_view allowed(std::string_view origin) const noexcept {
    if (p_.any_origin) return "*";
    for (const auto& o : p_.origins)
      if (o == origin) return o;
    return {};
  }

  http::step refuse(http::exchange& ex, std::string_view why) {
    core::bump(shard_.stats().cors_refused);
    http::respond_text(ex, 403, why);
    if (!p_.any_origin) ex.res.headers.add("Vary", "Origin");
    return http::step::answered;
  }

  http::step preflight(http::exchange& ex, std::string_view allow) {
    if (allow.empty()) return refuse(ex, "CORS preflight refused: origin not allowed");
    const std::string_view method = http::trim_ows(ex.req.headers.value_of("access-control-request-method"));
    if (std::find(p_.methods.begin(), p_.methods.end(), method) == p_.methods.end())
      return refuse(ex, "CORS preflight refused: method not allowed");
    // Every name the request asks for, in every Access-Control-Request-Headers field.
    std::string_view asked;
    for (const auto& f : ex.req.headers) {
      if (!http::iequals(f.name, "access-control-request-headers")) continue;
      std::string_view list = f.value;
      while (!list.empty()) {
        const auto comma = list.find(',');
        const std::string_view name = http::trim_ows(list.substr(0, comma));
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        if (name.empty()) continue;
        if (!http::is_token(name) || (!p_.any_header && std::none_of(p_.headers.begin(), p_.headers.end(),
                                                                      [name](const std::string& h) {
                                                                        return http::iequals(h, name);
                                                                      })))
          return refuse(ex, "CORS preflight refused: header not allowed");
      }
      if (asked.empty()) asked = http::trim_ows(f.value);
    }
    core::bump(shard_.stats().cors_preflights);
    ex.res.status = 204;
    ex.res.body = {};
    auto& fields = ex.res.headers;
    fields.add("Access-Control-Allow-Origin", allow);
    if (!p_.any_origin) fields.add("Vary", "Origin");
    fields.add("Access-Control-Allow-Methods", p_.allow_methods);
    // With "headers": "*", the names asked for (a literal "*" would not
    // cover credentialed requests).
    if (p_.any_header) {
      if (!asked.empty()) fields.add("Access-Control-Allow-Headers", asked);
    } else if (!p_.allow_headers.empty()) {
      fields.add("Access-Control-Allow-Headers", p_.allow_headers);
    }
    if (p_.credentials) fields.add("Access-Control-Allow-Credentials", "true");
    if (!p_.max_age.empty()) fields.add("Access-Control-Max-Age", p_.max_age);
    return http::step::answered;
  }

  const cors_policy& p_;
  metrics_shard& shard_;
};

}  // namespace

cors_policy compile_cors(const core::cors_config& c) {
  cors_policy p;
  if (c.origins.empty()) throw std::invalid_argument("cors.origins: list the allowed origins, or \"*\"");
  p.any_origin = names_a_star(c.origins, "cors.origins");
  if (!p.any_origin) {
    for (const auto& o : c.origins)
      if (!is_origin(o))
        throw std::invalid_argument("cors.origins '" + o +
                                    "': expected scheme://host[:port] in lowercase, without a path or a trailing "
                                    "'/' (what a browser sends in Origin)");
    p.origins = c.origins;
  }
  if (p.any_origin && c.credentials)
    throw std::invalid_argument(
        "cors: \"credentials\": true cannot go with \"origins\": \"*\" (browsers refuse that answer): list the "
        "origins");
  if (c.methods.empty()) throw std::invalid_argument("cors.methods: list at least one method");
  check_tokens(c.methods, "cors.methods");
  p.methods = c.methods;
  p.any_header = names_a_star(c.headers, "cors.headers");
  if (!p.any_header) {
    check_tokens(c.headers, "cors.headers");
    p.headers = c.headers;
  }
  if (names_a_star(c.expose_headers, "cors.expose_headers")) {
    if (c.credentials)
      throw std::invalid_argument(
          "cors.expose_headers: \"*\" with \"credentials\": true is read as a header named \"*\": list the names");
  } else {
    check_tokens(c.expose_headers, "cors.expose_headers");
  }
  p.credentials = c.credentials;
  p.allow_methods = join(p.methods);
  p.allow_headers = join(p.headers);
  p.expose_headers = join(c.expose_headers);
  if (c.max_age) p.max_age = std::to_string(c.max_age->count());
  return p;
}

http::layer_ptr make_cors(const cors_policy& policy, metrics_shard& shard) {
  return std::make_unique<cors_layer>(policy, shard);
}

}  // namespace gateway::middleware
