#pragma once
// GET /health (any method, no auth): 200 {"status":"healthy","timestamp":"<RFC 3339 UTC>"}.
#include "gateway/http/layer.hpp"

namespace gateway::admin {

http::layer_ptr make_health_page();

// Writes now as RFC 3339 UTC with seconds ("2026-11-28T00:00:00Z") into buf; returns its length.
std::size_t format_rfc3339_now(char (&buf)[32]) noexcept;

}  // namespace gateway::admin
