#include "loadtest/src/options.hpp"

#include "gateway/core/ascii.hpp"
#include "gateway/core/units.hpp"
#include "loadtest/src/thresholds.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace loadtest {
namespace {

using gateway::core::iequals_ascii;

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.front() == '\r')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
  return v;
}

// A non-negative decimal number with an optional fraction; the rest is the unit.
bool split_number(std::string_view text, double& number, std::string_view& unit) {
  text = trim(text);
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return false;
  const std::string digits(text.substr(0, i));
  char* end = nullptr;
  errno = 0;
  number = std::strtod(digits.c_str(), &end);
  if (errno != 0 || end != digits.c_str() + digits.size() || !std::isfinite(number) || number < 0) return false;
  unit = trim(text.substr(i));
  return true;
}

template <typename T>
bool parse_uint(std::string_view text, T& out) {
  text = trim(text);
  if (text.empty()) return false;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && p == text.data() + text.size();
}

std::optional<std::pair<std::string, std::string>> parse_header(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon == 0 || colon == std::string_view::npos) return std::nullopt;
  const std::string_view name = text.substr(0, colon);
  for (char c : name)
    if (c <= ' ' || c >= 0x7f) return std::nullopt;  // no whitespace before the colon (RFC 9112 5.1)
  // The framing is the load generator's to set, from the request's body.
  if (iequals_ascii(name, "content-length") || iequals_ascii(name, "transfer-encoding")) return std::nullopt;
  const std::string_view value = trim(text.substr(colon + 1));
  for (char c : value)
    if (c == '\r' || c == '\n') return std::nullopt;
  return std::make_pair(std::string(name), std::string(value));
}

void set_header(loadtest_options& o, std::pair<std::string, std::string> h) {
  for (auto& existing : o.headers) {
    if (iequals_ascii(existing.first, h.first)) {
      existing = std::move(h);
      return;
    }
  }
  o.headers.push_back(std::move(h));
}

std::optional<std::vector<int>> parse_status_list(std::string_view text) {
  std::vector<int> out;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    int code = 0;
    if (!parse_uint(text.substr(0, comma), code) || code < 100 || code > 599) return std::nullopt;
    out.push_back(code);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

bool valid_method(std::string_view m) {
  if (m.empty() || m.size() > 15) return false;
  return std::all_of(m.begin(), m.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// `WEIGHT METHOD PATH [body=SIZE] [gzip]`
std::optional<request_spec> parse_request_line(std::string_view text) {
  std::vector<std::string_view> words;
  while (!(text = trim(text)).empty()) {
    std::size_t sp = text.find_first_of(" \t");
    words.push_back(text.substr(0, sp));
    if (sp == std::string_view::npos) break;
    text.remove_prefix(sp);
  }
  if (words.size() < 3) return std::nullopt;
  request_spec r;
  if (!parse_uint(words[0], r.weight) || r.weight == 0) return std::nullopt;
  r.method = std::string(words[1]);
  if (!valid_method(r.method) || words[2].empty() || words[2].front() != '/') return std::nullopt;
  r.path = std::string(words[2]);
  for (std::size_t i = 3; i < words.size(); ++i) {
    if (words[i] == "gzip") {
      r.gzip = true;
    } else if (words[i].substr(0, 5) == "body=") {
      const auto size = parse_size(words[i].substr(5));
      if (!size) return std::nullopt;
      r.body_size = *size;
    } else {
      return std::nullopt;
    }
  }
  return r;
}

struct cli_request_override {
  std::optional<std::string> method;
  std::optional<std::uint64_t> body_size;
  bool gzip = false;
  bool any() const { return method || body_size || gzip; }
};

// One option (key without dashes, '-' and '_' equivalent) applied to `o`.
// Returns an error message or nullopt.
std::optional<std::string> apply_option(std::string key, std::string_view value, loadtest_options& o,
                                        cli_request_override* cli) {
  std::replace(key.begin(), key.end(), '_', '-');
  const auto bad = [&]() -> std::optional<std::string> { return "bad value for " + key + ": '" + std::string(value) + "'"; };
  if (key == "url") {
    auto u = parse_url(value);
    if (!u) return bad();
    o.url = *u;
    o.url_text = std::string(value);
  } else if (key == "connections") {
    if (!parse_uint(value, o.connections) || o.connections == 0 || o.connections > 1'000'000) return bad();
  } else if (key == "rate") {
    double r = 0;
    std::string_view unit;
    if (!split_number(value, r, unit) || !unit.empty() || r > 10'000'000) return bad();
    o.rate = r;
  } else if (key == "duration" || key == "warmup" || key == "timeout" || key == "settle-timeout") {
    auto d = parse_duration(value);
    if (!d) return bad();
    if (key == "duration") {
      if (d->count() <= 0) return bad();
      o.duration = *d;
    } else if (key == "warmup") {
      o.warmup = *d;
    } else if (key == "timeout") {
      if (d->count() <= 0) return bad();
      o.timeout = *d;
    } else {
      o.settle_timeout = *d;
    }
  } else if (key == "threads") {
    if (!parse_uint(value, o.threads) || o.threads == 0 || o.threads > 256) return bad();
  } else if (key == "method") {
    if (!valid_method(value)) return bad();
    if (cli) cli->method = std::string(value);
    else return "'method' is a command-line option; scenarios use 'request = WEIGHT METHOD PATH'";
  } else if (key == "body-size") {
    auto s = parse_size(value);
    if (!s || !cli) return bad();
    cli->body_size = *s;
  } else if (key == "gzip") {
    if (!cli || !value.empty()) return bad();
    cli->gzip = true;
  } else if (key == "header") {
    auto h = parse_header(value);
    if (!h) return bad();
    set_header(o, std::move(*h));
  } else if (key == "request") {
    if (cli) return "'request' is a scenario key";
    auto r = parse_request_line(value);
    if (!r) return bad();
    o.requests.push_back(std::move(*r));
  } else if (key == "source-ips") {
    if (!parse_uint(value, o.source_ips) || o.source_ips > 1'000'000) return bad();
  } else if (key == "expect-status") {
    auto s = parse_status_list(value);
    if (!s) return bad();
    o.expect_status = std::move(*s);
  } else if (key == "json") {
    if (value.empty()) return bad();
    o.json_path = std::string(value);
  } else if (key == "pid") {
    if (!parse_uint(value, o.pid) || o.pid <= 0) return bad();
  } else if (key == "max-requests") {
    if (!parse_uint(value, o.max_requests)) return bad();
  } else if (key == "rss-tolerance") {
    auto s = parse_size(value);
    if (!s) return bad();
    o.rss_tolerance = *s;
  } else if (key == "max-reconnects") {
    if (!parse_uint(value, o.max_reconnects)) return bad();
  } else if (key == "quiet") {
    o.quiet = true;
  } else if (key == "fail-if") {
    std::string error;
    if (!parse_threshold(value, error)) return "--fail-if " + error;
    o.fail_if.emplace_back(value);
  } else if (key == "baseline") {
    if (value.empty()) return bad();
    o.baseline_path = std::string(value);
  } else if (key == "max-regression") {
    const auto p = parse_percent(value);
    if (!p) return bad();
    o.max_regression = *p;
  } else if (key == "regression-metrics") {
    std::vector<std::string> names;
    for (std::string_view rest = value; !rest.empty();) {
      const std::size_t comma = rest.find(',');
      const std::string name(trim(rest.substr(0, comma)));
      const bool known = std::any_of(metric_table().begin(), metric_table().end(),
                                     [&](const metric_info& m) { return m.name == name; });
      if (!known) return "--regression-metrics: unknown metric '" + name + "'";
      names.push_back(name);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (names.empty()) return bad();
    o.regression_metrics = std::move(names);
  } else if (key == "name") {
    o.scenario_name = std::string(value);
  } else if (key == "description") {
    // For people reading the file.
  } else {
    return "unknown option '" + key + "'";
  }
  return std::nullopt;
}

bool takes_no_value(std::string_view key) { return key == "gzip" || key == "quiet" || key == "help"; }

std::optional<std::string> read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot open scenario file '" + path + "'";
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return std::nullopt;
}

}  // namespace

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) noexcept {
  return gateway::core::parse_duration(trim(text));
}

std::optional<std::uint64_t> parse_size(std::string_view text) noexcept {
  return gateway::core::parse_size(trim(text));
}

std::optional<target_url> parse_url(std::string_view text) {
  constexpr std::string_view scheme = "http://";
  if (text.substr(0, scheme.size()) != scheme) return std::nullopt;
  text.remove_prefix(scheme.size());
  const std::size_t slash = text.find('/');
  std::string_view authority = text.substr(0, slash);
  target_url u;
  if (slash != std::string_view::npos) u.path = std::string(text.substr(slash));
  if (u.path.find_first_of(" \r\n\t") != std::string::npos) return std::nullopt;
  const std::size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos) {
    if (!parse_uint(authority.substr(colon + 1), u.port) || u.port == 0) return std::nullopt;
    authority = authority.substr(0, colon);
  }
  if (authority.empty() || authority.find_first_of("@[]/ ") != std::string_view::npos) return std::nullopt;
  u.host = std::string(authority);
  return u;
}

std::optional<std::string> apply_scenario_text(std::string_view text, loadtest_options& out) {
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (const std::size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      // A bare flag ("gzip", "quiet").
      if (auto e = apply_option(std::string(line), {}, out, nullptr)) return std::string("line ") + std::to_string(line_no) + ": " + *e;
      continue;
    }
    const std::string key(trim(line.substr(0, eq)));
    if (auto e = apply_option(key, trim(line.substr(eq + 1)), out, nullptr))
      return std::string("line ") + std::to_string(line_no) + ": " + *e;
  }
  return std::nullopt;
}

std::optional<std::string> parse_command_line(int argc, char** argv, loadtest_options& out, bool& help) {
  help = false;
  struct arg {
    std::string key;
    std::string value;
  };
  std::vector<arg> args;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      help = true;
      return std::nullopt;
    }
    if (a.substr(0, 2) != "--") return "unexpected argument '" + std::string(a) + "' (see --help)";
    a.remove_prefix(2);
    arg x;
    if (const std::size_t eq = a.find('='); eq != std::string_view::npos) {
      x.key = std::string(a.substr(0, eq));
      x.value = std::string(a.substr(eq + 1));
    } else {
      x.key = std::string(a);
      if (!takes_no_value(x.key)) {
        if (i + 1 >= argc) return "option --" + x.key + " needs a value";
        x.value = argv[++i];
      }
    }
    args.push_back(std::move(x));
  }
  for (const arg& a : args) {
    if (a.key != "scenario") continue;
    std::string text;
    if (auto e = read_file(a.value, text)) return e;
    std::string stem = a.value.substr(a.value.find_last_of('/') + 1);
    stem = stem.substr(0, stem.find('.'));
    out.scenario_name = stem;
    if (auto e = apply_scenario_text(text, out)) return a.value + ": " + *e;
  }
  cli_request_override cli;
  for (const arg& a : args) {
    if (a.key == "scenario") continue;
    if (auto e = apply_option(a.key, a.value, out, &cli)) return e;
  }
  if (out.url_text.empty()) return std::string("--url is required");
  if (out.scenario_name.empty()) out.scenario_name = "adhoc";
  if (cli.any() || out.requests.empty()) {
    request_spec r;
    r.method = cli.method.value_or(cli.body_size || cli.gzip ? "POST" : "GET");
    r.body_size = cli.body_size.value_or(0);
    r.gzip = cli.gzip;
    out.requests.assign(1, r);
  }
  if (out.threads > out.connections) out.threads = out.connections;
  return std::nullopt;
}

std::string_view usage_text() noexcept {
  return R"(usage: loadtest --url http://127.0.0.1:PORT/path [options]

  --scenario FILE        settings from a scenario file (loadtest/scenarios/*.conf); options below override
  --connections N        client connections, one coroutine each (default 2000)
  --rate N               open loop: N req/s in total, spread evenly over the connections; latency
                         counts from each request's intended send time. Without it: closed loop.
  --duration D           measured time (default 10s)
  --warmup D             load before the measured time, not counted (default 1s)
  --threads N            worker threads (default 1)
  --method M             request method (replaces the scenario's request mix)
  --body-size SIZE       send a body of SIZE bytes (POST unless --method says otherwise)
  --gzip                 send the body gzip-compressed (Content-Encoding: gzip)
  --header "N: v"        add a request header (repeatable)
  --source-ips N         bind connections to 127.0.0.2 .. round robin over N addresses
  --expect-status LIST   statuses that count as success (default 200), e.g. 200,429
  --max-requests N       stop after N measured requests
  --timeout D            per request and per connect (default 10s); also bounds the drain
  --max-reconnects N     consecutive failures before a connection gives up (default 10)
  --json FILE            write the JSON report to FILE
  --pid PID              sample that process's RSS and CPU every 250 ms
  --rss-tolerance SIZE   settled when RSS <= baseline + SIZE (default max(10% of baseline, 8MiB))
  --settle-timeout D     how long to wait for RSS to settle after the load (default 30s)
  --quiet                no progress lines on stderr
CI checks (exit status 3 when one fails; each failure is named on stderr):
  --fail-if COND         fail the run when COND holds (repeatable), e.g. 'p99>50ms', 'errors>0',
                         'rps<10000', 'error_rate>0.1%', 'cpu>70', 'rss_peak>500MiB'.
                         COND is METRIC OP VALUE with OP one of > >= < <= == !=; metrics: p50 p90 p99
                         p999 max mean min (times: give ns/us/ms/s), rps, requests, ok, errors,
                         errors.KIND, dropped, error_rate (%), and with --pid cpu (% of a core),
                         cpu_per_request (a time), rss_peak, rss_end (sizes), settle (a time)
  --baseline FILE        an earlier --json report to compare with
  --max-regression P     with --baseline: fail when a metric is worse by more than P (default 10%)
  --regression-metrics L the metrics compared with the baseline (default rps,p99)
Durations: 10s, 500ms, 2m. Sizes: 1024, 1KiB (or 1k), 10MiB (or 10m), 1MB (decimal),
read as the gateway reads its flags.
)";
}

}  // namespace loadtest
