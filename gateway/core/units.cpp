#include "gateway/core/units.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "gateway/core/ascii.hpp"

namespace gateway::core {

namespace {

// Splits "12.5ms" into 12.5 and "ms". Only plain decimal digits with an
// optional fraction are numbers here (no sign, no exponent).
bool split_number(std::string_view text, double& value, std::string_view& unit) {
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return false;
  auto r = std::from_chars(text.data(), text.data() + i, value);
  if (r.ec != std::errc{} || r.ptr != text.data() + i) return false;
  unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  return true;
}

}  // namespace

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  double v = 0;
  std::string_view unit;
  if (!split_number(text, v, unit)) return std::nullopt;
  double scale = 0;
  if (unit.empty() || unit == "s") scale = 1e9;
  else if (unit == "ms") scale = 1e6;
  else if (unit == "us") scale = 1e3;
  else if (unit == "ns") scale = 1;
  else if (unit == "m" || unit == "min") scale = 60e9;
  else if (unit == "h") scale = 3600e9;
  else return std::nullopt;
  double ns = v * scale;
  if (ns > 9.0e18) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  double v = 0;
  std::string_view unit;
  if (!split_number(text, v, unit)) return std::nullopt;
  double scale = 0;
  if (unit.empty() || iequals_ascii(unit, "b")) scale = 1;
  else if (iequals_ascii(unit, "k") || iequals_ascii(unit, "kib")) scale = 1024.0;
  else if (iequals_ascii(unit, "m") || iequals_ascii(unit, "mib")) scale = 1024.0 * 1024;
  else if (iequals_ascii(unit, "g") || iequals_ascii(unit, "gib")) scale = 1024.0 * 1024 * 1024;
  else if (iequals_ascii(unit, "kb")) scale = 1e3;
  else if (iequals_ascii(unit, "mb")) scale = 1e6;
  else if (iequals_ascii(unit, "gb")) scale = 1e9;
  else return std::nullopt;
  double bytes = v * scale;
  if (bytes > 1.8e19) return std::nullopt;
  // A size is whole bytes: "1.5MiB" is, "1.5" is not (it was cut to 1 byte).
  // Rounding, not cutting, absorbs the binary fraction of "0.3MB".
  const double whole = std::round(bytes);
  if (std::fabs(bytes - whole) > 1e-9 * std::max(1.0, bytes)) return std::nullopt;
  return static_cast<std::uint64_t>(whole);
}

std::string format_duration(std::chrono::nanoseconds d) {
  auto ns = d.count();
  // Whole hours as hours (the --help defaults: 12h, not 43200s).
  if (ns != 0 && ns % 3'600'000'000'000 == 0) return std::to_string(ns / 3'600'000'000'000) + "h";
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  if (ns % 1'000 == 0) return std::to_string(ns / 1'000) + "us";
  return std::to_string(ns) + "ns";
}

std::string format_size(std::uint64_t bytes) {
  if (bytes && bytes % (1024ull * 1024 * 1024) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes && bytes % (1024ull * 1024) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes && bytes % 1024 == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes);
}

}  // namespace gateway::core
