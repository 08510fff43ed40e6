#pragma once
// Minimal JSON output helpers: append to a caller-owned std::string (which the
// caller reuses, so steady-state output allocates nothing).
#include <cstdint>
#include <string>
#include <string_view>

namespace gateway::json {

// Appends `s` as a JSON string literal (with quotes). Control characters,
// quotes and backslashes are escaped; bytes that are not valid UTF-8 are
// replaced by U+FFFD so the output is always valid JSON.
void append_string(std::string& out, std::string_view s);

void append_number(std::string& out, std::int64_t v);
void append_number(std::string& out, std::uint64_t v);
// Finite doubles with up to `precision` digits after the point; NaN/inf as 0.
void append_number(std::string& out, double v, int precision = 3);

}  // namespace gateway::json
