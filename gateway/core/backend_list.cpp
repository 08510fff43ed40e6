#include "gateway/core/backend_list.hpp"

#include <algorithm>
#include <charconv>

namespace gateway::core {

namespace {

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

bool parse_backend_list(std::string_view list, std::vector<backend_member>& out, std::string& err) {
  out.clear();
  while (true) {
    const auto comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    backend_member m;
    if (const auto semi = item.find(';'); semi != std::string_view::npos) {
      const std::string_view opt = trim(item.substr(semi + 1));
      item = trim(item.substr(0, semi));
      constexpr std::string_view key = "weight=";
      const std::string_view num = opt.substr(std::min(opt.size(), key.size()));
      unsigned w = 0;
      auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), w);
      if (opt.substr(0, key.size()) != key || num.empty() || ec != std::errc{} || ptr != num.data() + num.size() ||
          w == 0 || w > max_backend_weight) {
        // Appended piece by piece: g++ 12 misreads "'" + std::string + ...
        // as a huge memcpy (-Wstringop-overflow, a known false warning).
        err.assign(1, '\'');
        err.append(item)
            .append("': expected URL;weight=N with N from 1 to ")
            .append(std::to_string(max_backend_weight));
        return false;
      }
      m.weight = w;
    }
    const std::size_t scheme = item.substr(0, 7) == "http://" ? 7 : item.substr(0, 8) == "https://" ? 8 : 0;
    if (scheme == 0 || item.size() <= scheme) {
      if (item.empty()) {
        err = "empty item in the backend list (expected URL,URL...)";
      } else {
        err.assign(1, '\'');
        err.append(item).append("': expected http://HOST:PORT or https://HOST:PORT");
      }
      return false;
    }
    m.url = std::string(item);
    for (const auto& o : out) {
      if (o.url == m.url) {
        err = "'" + m.url + "' is listed twice";
        return false;
      }
    }
    out.push_back(std::move(m));
    if (out.size() > max_backend_members) {
      err = "more than " + std::to_string(max_backend_members) + " backends in one group";
      return false;
    }
    if (comma == std::string_view::npos) return true;
    list = list.substr(comma + 1);
  }
}

}  // namespace gateway::core
