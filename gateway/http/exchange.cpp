#include "gateway/http/exchange.hpp"

#include <cstring>

namespace gateway::http {

void respond_text(exchange& ex, int status, std::string_view message) {
  auto* p = static_cast<char*>(ex.mem().allocate(message.size() + 1, 1));
  std::memcpy(p, message.data(), message.size());
  p[message.size()] = '\n';
  ex.res.status = status;
  ex.res.stream = nullptr;
  ex.res.body = {p, message.size() + 1};
  ex.res.headers.set("Content-Type", "text/plain; charset=utf-8");
}

void respond_json(exchange& ex, int status, std::string_view json) {
  ex.res.status = status;
  ex.res.stream = nullptr;
  ex.res.body = ex.mem().copy(json);
  ex.res.headers.set("Content-Type", "application/json");
}

}  // namespace gateway::http
