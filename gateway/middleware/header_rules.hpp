#pragma once
// Per-route header rules: fields of the request the backend receives and of
// the response the client receives, set, added or removed as a route's
// "request_headers" and "response_headers" say (core/config_file.hpp).
//
// Values are templates: text with ${client_ip} (the client's address),
// ${request_id} (the request's X-Request-Id) and ${route} (the route's
// prefix). Nothing else: any other ${...}, and a "${" left open, is refused
// when the rules are compiled. A '$' not followed by '{' is text.
//
// Per direction, in this order: remove (every field of the name), set
// (every field of the name replaced by one), add (one more field, after
// those already there).
//
// Names the gateway writes itself cannot be touched, so a rule can never
// desynchronise framing or the proxy's own fields: hop-by-hop fields
// (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
// Upgrade) and Content-Length both ways; on requests also Host (a route's
// "host": "upstream" sends the backend's authority instead),
// X-Forwarded-Host and X-Forwarded-Proto, and X-Forwarded-For except for
// "remove" (the proxy then starts the list afresh with the client's
// address); on responses also Access-Control-* when the route has "cors"
// (the CORS layer writes them).
//
// Where it runs: the route's layer list puts this layer after the route's
// policy (rate limit, auth, validation: they see the request as the client
// sent it) and before the concurrency cap and the proxy. The request is
// edited in enter(); the response in leave(), so the rules apply to the
// backend's answer and to the gateway's 502/503/504 in its place, not to a
// policy layer's own answer (401, 429, 400).
//
// Cost: a value with no substitution is a view of the compiled rule; one
// with substitutions is built in the request arena. The edits use the
// header lists' arena storage: no heap allocation per request. A route
// without rules has no such layer at all.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/config.hpp"
#include "gateway/http/layer.hpp"

namespace gateway::middleware {

// A header value with substitutions, parsed once.
class header_template {
 public:
  enum class var : std::uint8_t { none, client_ip, request_id, route };
  struct piece {
    std::string text;  // when v == var::none
    var v = var::none;
  };

  // Parses `text`. Throws std::invalid_argument naming an unknown
  // substitution, a "${" left open, or a byte no field value may hold.
  explicit header_template(std::string_view text);

  // The value for this request: a view of the template's own text when it
  // has no substitution, else text built in ex's arena. Valid until the
  // request ends.
  std::string_view expand(const http::exchange& ex) const;

  bool uses(var v) const noexcept;
  const std::vector<piece>& pieces() const noexcept { return pieces_; }

 private:
  std::vector<piece> pieces_;
  std::string constant_;  // the whole value when it has no substitution
  bool constant_only_ = true;
};

struct header_rule {
  std::string name;
  header_template value;
};

// One direction's edits.
struct header_edit_rules {
  std::vector<std::string> remove;
  std::vector<header_rule> set;
  std::vector<header_rule> add;
  bool empty() const noexcept { return remove.empty() && set.empty() && add.empty(); }
  // Applies the edits to `fields` (remove, set, add), values expanded for `ex`.
  void apply(http::header_list& fields, const http::exchange& ex) const;
};

struct route_header_rules {
  header_edit_rules request;
  header_edit_rules response;
  bool empty() const noexcept { return request.empty() && response.empty(); }
};

// Checks and compiles route `r`'s request_headers and response_headers.
// Throws std::invalid_argument naming the key and the header, e.g.
// "request_headers.set 'X-Who': unknown substitution ${user} (use
// ${client_ip}, ${request_id} or ${route})". Start-up (and reload) only.
route_header_rules compile_header_rules(const core::route_config& r);

// Throws std::invalid_argument starting with `key` when `name` is not a
// header name the configuration may set on requests to a backend (a token,
// none of the fields the gateway writes itself: see above). For settings
// that add request fields of their own (--jwt-claim-header).
void check_request_header_name(const std::string& key, std::string_view name);

// The layer applying `rules` (which must outlive it).
http::layer_ptr make_header_rules(const route_header_rules& rules);

}  // namespace gateway::middleware
