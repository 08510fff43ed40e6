#pragma once
// The query part of a request-target (RFC 3986 section 3.4), as the
// gateway's own routes and middleware read it: `name=value` pairs split on
// '&', in the order sent.
#include <optional>
#include <string_view>

#include "gateway/core/arena.hpp"

namespace gateway::http {

// The value of the first parameter called `name` (an empty view for a bare
// `name` or `name=`), not percent-decoded; nullopt when there is none.
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) noexcept;

// `v` with %XX escapes and '+' (a space, in form encoding) decoded, in `mem`
// when anything changes (else `v` itself). A '%' not followed by two hex
// digits stays as it is.
std::string_view form_decode(core::arena& mem, std::string_view v);

}  // namespace gateway::http
