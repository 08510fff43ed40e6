#pragma once
// Parsing of the human units used by flags and the config file.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gateway::core {

// "5s", "500ms", "2m", "1h", "250us"; a bare number means seconds. Rejects
// negative values, empty strings, unknown suffixes and overflow.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

// "10MiB", "512KiB", "1GiB", "64k", "10MB" (decimal), "4096" (bytes).
std::optional<std::uint64_t> parse_size(std::string_view text);

std::string format_duration(std::chrono::nanoseconds d);
std::string format_size(std::uint64_t bytes);

}  // namespace gateway::core
