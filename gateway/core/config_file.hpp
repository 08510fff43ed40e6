#pragma once
// The --config file: one JSON object (read with the project's strict
// reader) whose keys are the flags' names without the leading dashes and
// with '_' for '-' ("max_body": "10MiB", "upstream_timeout": "5s"), plus
// "routes", a list of route objects:
//
//   {"prefix": "/app/", "backend": "http://127.0.0.1:5173",
//    "strip_prefix": true, "auth": false, "rate_limit": false,
//    "timeout": "30s", "connect_timeout": "2s",
//    "validate": [{"path": "/app/users", "field": "name", "required": true,
//                  "min_len": 2, "max_len": 64}],
//    "request_headers": {"set": {"X-Client": "${client_ip}"},
//                        "add": {"X-Tag": ["a", "b"]}, "remove": ["Cookie"]},
//    "response_headers": {"set": {...}, "add": {...}, "remove": ["Server"]},
//    "host": "upstream",
//    "cors": {"origins": ["https://app.example"], "methods": ["GET", "POST"],
//             "headers": ["Content-Type"], "credentials": true,
//             "max_age": "10m", "expose_headers": ["X-Request-Id"]}}
//
// The file gives these their shape; what they mean (header names a route
// may not touch, substitutions, origins) is checked when the settings are
// built (app/settings.hpp), where an error names the route and the key.
//
// Values: a string in the flag's syntax; a number for numeric flags; true or
// false for on/off flags; an array of strings for repeatable flags
// ("api_key", "validate", "route"). Unknown keys and bad values are errors
// "FILE:LINE: ..." naming the key. Start-up (and reload) only: reads a file.
#include <string>
#include <string_view>

#include "gateway/core/config.hpp"

namespace gateway::core {

// Applies the settings in `text` (named `name` in messages) over `out`.
// False with `err` = "NAME:LINE: what is wrong" on the first problem; `out`
// may then be partly updated (callers parse into a copy).
bool apply_config_text(std::string_view text, std::string_view name, config& out, std::string& err);

// Reads `path` and applies it (at most 1 MiB).
bool load_config_file(const std::string& path, config& out, std::string& err);

}  // namespace gateway::core
