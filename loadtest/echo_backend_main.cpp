// echo_backend: a fast keep-alive HTTP/1.1 backend for load tests. Prints
// "listening on ADDRESS:PORT" as its first stdout line (flushed), serves until
// SIGINT/SIGTERM, then prints how many requests it answered.
#include "loadtest/src/echo_server.hpp"
#include "loadtest/src/options.hpp"

#include <sys/resource.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>

namespace {

constexpr std::string_view usage = R"(usage: echo_backend [--listen 127.0.0.1:PORT] [options]
  --listen ADDR:PORT     address to listen on (default 127.0.0.1:0; port 0 picks a free one)
  --threads N            worker threads (default 1)
  --response-size SIZE   fixed response body size (default 2: "ok")
  --delay D              wait D before each response, on a timer (e.g. 2ms)
  --echo                 answer with the request body instead
  --max-body SIZE        echo mode: larger bodies get 413 (default 64MiB)
)";

bool parse_endpoint(std::string_view text, asio::ip::tcp::endpoint& out) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::error_code ec;
  const auto addr = asio::ip::make_address(std::string(text.substr(0, colon)), ec);
  unsigned port = 0;
  const std::string_view p = text.substr(colon + 1);
  const auto [end, perr] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec || perr != std::errc{} || end != p.data() + p.size() || port > 65535) return false;
  out = asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(port));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  loadtest::echo_options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto value = [&]() -> std::string_view { return i + 1 < argc ? std::string_view(argv[++i]) : std::string_view(); };
    bool ok = true;
    if (a == "--help" || a == "-h") {
      std::fwrite(usage.data(), 1, usage.size(), stdout);
      return 0;
    } else if (a == "--listen") {
      ok = parse_endpoint(value(), o.listen);
    } else if (a == "--threads") {
      const std::string_view v = value();
      const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), o.threads);
      ok = ec == std::errc{} && p == v.data() + v.size() && o.threads > 0 && o.threads <= 256;
    } else if (a == "--response-size" || a == "--max-body") {
      const auto s = loadtest::parse_size(value());
      ok = s.has_value() && *s <= (1ULL << 32);
      if (ok) (a == "--max-body" ? o.max_body : o.response_size) = *s;
    } else if (a == "--delay") {
      const auto d = loadtest::parse_duration(value());
      ok = d.has_value();
      if (ok) o.delay = *d;
    } else if (a == "--echo") {
      o.echo = true;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "echo_backend: bad argument '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  std::signal(SIGPIPE, SIG_IGN);
  try {
    loadtest::echo_server server(o);
    const auto ep = server.local_endpoint();
    std::printf("listening on %s:%u\n", ep.address().to_string().c_str(), static_cast<unsigned>(ep.port()));
    std::fflush(stdout);
    server.run(true);
    std::printf("served %llu requests\n", static_cast<unsigned long long>(server.requests_served()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_backend: %s\n", e.what());
    return 1;
  }
  return 0;
}
