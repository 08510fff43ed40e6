#pragma once
// A backend as the configuration gives it: one URL or a group of them,
// "URL[;weight=N],URL..." (spaces around items allowed), as --backend,
// --route PREFIX=LIST and the config file's "backend" take it. URLs are
// checked for their scheme here; proxy/backend_address.hpp parses the rest.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gateway::core {

inline constexpr std::size_t max_backend_members = 32;
inline constexpr std::uint32_t max_backend_weight = 1000;

struct backend_member {
  std::string url;  // "http://HOST:PORT" or "https://HOST[:PORT]" as written, without the weight
  std::uint32_t weight = 1;
};

// False with `err` naming the item for an empty item, a URL that is not
// http:// or https://, a bad weight (1..1000), a URL listed twice, or more than
// max_backend_members members.
bool parse_backend_list(std::string_view list, std::vector<backend_member>& out, std::string& err);

}  // namespace gateway::core
