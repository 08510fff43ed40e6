#include "gateway/middleware/metrics_registry.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gateway/json/reader.hpp"

using gateway::middleware::metrics_options;
using gateway::middleware::metrics_registry;
namespace latency_buckets = gateway::middleware::latency_buckets;
using namespace std::chrono_literals;

namespace {

// A strict checker for the Prometheus text exposition format 0.0.4, as far
// as our output uses it: HELP/TYPE comments, samples `name{labels} value`
// without timestamps, families contiguous with their TYPE first, histogram
// buckets cumulative, ascending in le, ending in le="+Inf" equal to _count.
// Returns the samples keyed by `name{labels}` exactly as written.
struct prom_result {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::vector<std::string> errors;
};

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

bool parse_value(const std::string& s, double& v) {
  if (s == "+Inf") { v = INFINITY; return true; }
  if (s == "-Inf") { v = -INFINITY; return true; }
  if (s == "NaN") { v = NAN; return true; }
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

prom_result check_prometheus(const std::string& text) {
  prom_result r;
  auto fail = [&](std::string what, const std::string& line) { r.errors.push_back(what + ": " + line); };
  if (text.empty() || text.back() != '\n') r.errors.push_back("output does not end with a newline");
  std::set<std::string> finished;  // families whose samples are over
  std::string current;             // family of the previous line
  struct hist_state {
    double last_le = -INFINITY;
    double last_count = 0;
    bool saw_inf = false;
    double inf_count = -1;
    double count = -1;
  };
  std::map<std::string, hist_state> hists;

  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) { fail("empty line", line); continue; }
    if (line[0] == '#') {
      std::istringstream ls(line);
      std::string hash, keyword, name;
      ls >> hash >> keyword >> name;
      if (hash != "#" || (keyword != "HELP" && keyword != "TYPE")) { fail("bad comment", line); continue; }
      if (name.empty() || !is_name_start(name[0]) || !std::all_of(name.begin(), name.end(), is_name_char)) {
        fail("bad metric name", line);
        continue;
      }
      if (current != name) {
        if (!current.empty()) finished.insert(current);
        if (finished.count(name)) fail("family appears twice", line);
        current = name;
      }
      if (keyword == "TYPE") {
        std::string type, extra;
        ls >> type;
        if (ls >> extra) fail("junk after TYPE", line);
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped")
          fail("bad type", line);
        if (r.types.count(name)) fail("second TYPE", line);
        r.types[name] = type;
      }
      continue;
    }
    // Sample line.
    std::size_t i = 0;
    if (!is_name_start(line[0])) { fail("bad sample name", line); continue; }
    while (i < line.size() && is_name_char(line[i])) ++i;
    const std::string name = line.substr(0, i);
    std::map<std::string, std::string> labels;
    if (i < line.size() && line[i] == '{') {
      ++i;
      bool ok = true;
      while (ok && i < line.size() && line[i] != '}') {
        std::size_t start = i;
        if (!is_name_start(line[i]) || line[i] == ':') { ok = false; break; }
        while (i < line.size() && is_name_char(line[i]) && line[i] != ':') ++i;
        std::string label = line.substr(start, i - start);
        if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') { ok = false; break; }
        i += 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size()) { ok = false; break; }
            char e = line[i + 1];
            if (e == '\\') value += '\\';
            else if (e == '"') value += '"';
            else if (e == 'n') value += '\n';
            else { ok = false; break; }
            i += 2;
          } else {
            value += line[i++];
          }
        }
        if (!ok || i >= line.size()) { ok = false; break; }
        ++i;  // closing quote
        if (labels.count(label)) ok = false;
        labels[label] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (!ok || i >= line.size() || line[i] != '}') { fail("bad labels", line); continue; }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') { fail("no space before value", line); continue; }
    const std::string value_text = line.substr(i + 1);
    double v = 0;
    if (!parse_value(value_text, v)) { fail("bad value (or a timestamp)", line); continue; }
    const std::string key = line.substr(0, i);
    if (r.samples.count(key)) fail("duplicate sample", line);
    r.samples[key] = v;

    // Which family does it belong to?
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string sfx = suffix;
      if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
        std::string base = name.substr(0, name.size() - sfx.size());
        if (r.types.count(base) && r.types[base] == "histogram") family = base;
      }
    }
    if (!r.types.count(family)) { fail("sample before its TYPE", line); continue; }
    if (family != current) {
      if (!current.empty()) finished.insert(current);
      if (finished.count(family)) fail("family interleaved", line);
      current = family;
    }
    if (r.types[family] == "histogram") {
      hist_state& h = hists[family];
      if (name == family + "_bucket") {
        if (!labels.count("le")) { fail("bucket without le", line); continue; }
        double le = 0;
        if (!parse_value(labels["le"], le)) { fail("bad le", line); continue; }
        if (h.saw_inf) fail("bucket after +Inf", line);
        if (!(le > h.last_le)) fail("le not ascending", line);
        if (v < h.last_count) fail("buckets not cumulative", line);
        h.last_le = le;
        h.last_count = v;
        if (std::isinf(le)) {
          h.saw_inf = true;
          h.inf_count = v;
        }
      } else if (name == family + "_count") {
        h.count = v;
      } else if (name != family + "_sum") {
        fail("unexpected histogram sample", line);
      }
    }
  }
  for (const auto& [family, h] : hists) {
    if (!h.saw_inf) r.errors.push_back(family + ": no le=\"+Inf\" bucket");
    if (h.inf_count != h.count) r.errors.push_back(family + ": +Inf bucket differs from _count");
  }
  return r;
}

gateway::json::value parse_json(const std::string& text) {
  auto r = gateway::json::parse(text);
  INFO(text.substr(0, 2000));
  if (!r) FAIL("JSON parse error: " << r.error().message << " at " << r.error().offset);
  return std::move(r).value();
}

std::int64_t int_field(const gateway::json::value& v, std::string_view key) {
  const auto* f = v.find(key);
  REQUIRE(f != nullptr);
  REQUIRE(f->as_int64().has_value());
  return *f->as_int64();
}

// Exact nearest-rank percentile of a sorted sample, in ns.
double exact_percentile(const std::vector<std::int64_t>& sorted, double q) {
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]);
}

}  // namespace

TEST_CASE("latency buckets cover every value with at most 1/32 relative width", "[unit][middleware][metrics]") {
  std::size_t prev = 0;
  std::mt19937_64 rng(7);
  std::vector<std::int64_t> values = {0, 1, 31, 32, 1023, 1024, 1025, 2047, 2048, 999'999, 1'000'000,
                                      (std::int64_t{1} << 36) - 1, std::int64_t{1} << 36, std::int64_t{1} << 50};
  for (int i = 0; i < 100000; ++i) values.push_back(static_cast<std::int64_t>(rng() >> (28 + rng() % 36)));
  std::sort(values.begin(), values.end());
  for (std::int64_t v : values) {
    const std::size_t i = latency_buckets::index_of(v);
    REQUIRE(i < latency_buckets::count);
    REQUIRE(i >= prev);  // monotonic
    prev = i;
    REQUIRE(latency_buckets::lower_bound(i) <= v);
    if (i + 1 < latency_buckets::count) {
      REQUIRE(v < latency_buckets::lower_bound(i) + latency_buckets::width(i));
      REQUIRE(latency_buckets::lower_bound(i + 1) == latency_buckets::lower_bound(i) + latency_buckets::width(i));
      if (v >= 1024) REQUIRE(latency_buckets::width(i) * 32 <= latency_buckets::lower_bound(i));
    }
  }
  CHECK(latency_buckets::index_of(-5) == 0);
  CHECK(latency_buckets::index_of(std::int64_t{60'000'000'000}) < latency_buckets::count - 1);
  CHECK(latency_buckets::index_of(std::int64_t{1} << 40) == latency_buckets::count - 1);
}

TEST_CASE("metrics registry aggregates every worker's shard", "[unit][middleware][metrics]") {
  metrics_registry reg(4);
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < 4; ++w)
    workers.emplace_back([&reg, w] {
      auto& shard = reg.shard(w);
      for (int i = 0; i < 10000; ++i) {
        shard.record(i % 2 ? "/api/a" : "/api/b", i % 10 == 0 ? 502 : 200, std::chrono::microseconds(100 + w));
        if (i % 100 == 0) gateway::core::bump(shard.stats().rate_limited);
      }
      gateway::core::bump(shard.stats().auth_rejected, 3);
      gateway::core::bump(shard.stats().cors_refused, 2);
    });
  for (auto& t : workers) t.join();

  auto s = reg.snapshot();
  CHECK(s.total_requests == 40000);
  CHECK(s.total_errors == 4000);
  CHECK(s.latency_sum_ns == std::uint64_t{10000} * (100'000 + 101'000 + 102'000 + 103'000));
  CHECK(s.latency_max_ns == 103'000);
  REQUIRE(s.counters.size() == 4);
  CHECK(s.counters[0] == std::pair<std::string_view, std::int64_t>{"rate_limited", 400});
  CHECK(s.counters[1] == std::pair<std::string_view, std::int64_t>{"auth_rejected", 12});
  CHECK(s.counters[2] == std::pair<std::string_view, std::int64_t>{"cors_preflights", 0});
  CHECK(s.counters[3] == std::pair<std::string_view, std::int64_t>{"cors_refused", 8});
  REQUIRE(s.paths.size() == 2);
  CHECK(s.paths[0].path == "/api/a");
  CHECK(s.paths[0].requests == 20000);
  CHECK(s.paths[0].errors == 0);  // i % 10 == 0 is always even: "/api/b"
  CHECK(s.paths[1].path == "/api/b");
  CHECK(s.paths[1].requests == 20000);
  CHECK(s.paths[1].errors == 4000);
  CHECK(s.avg_latency_ms() == Approx(0.1015));
  CHECK(reg.tracked_paths() == 2);
}

TEST_CASE("metrics registry counts status 400 and above as errors", "[unit][middleware][metrics]") {
  metrics_registry reg(1);
  for (int status : {100, 200, 204, 301, 304, 399, 400, 401, 404, 413, 429, 499, 500, 502, 504, 599})
    reg.shard(0).record("/x", status, 1ms);
  auto s = reg.snapshot();
  CHECK(s.total_requests == 16);
  CHECK(s.total_errors == 10);
  std::string out;
  reg.render_json(out);
  auto v = parse_json(out);
  CHECK(int_field(v, "total_errors") == 10);
  CHECK(int_field(*v.find("errors_by_path"), "/x") == 10);
}

TEST_CASE("metrics percentiles stay within 3% of the exact values", "[unit][middleware][metrics]") {
  std::mt19937_64 rng(42);
  auto run = [&](const char* what, auto draw) {
    INFO(what);
    metrics_registry reg(2);
    std::vector<std::int64_t> values;
    for (int i = 0; i < 200000; ++i) {
      const std::int64_t ns = draw();
      values.push_back(ns);
      reg.shard(static_cast<std::size_t>(i % 2)).record("/p", 200, std::chrono::nanoseconds(ns));
    }
    std::sort(values.begin(), values.end());
    auto s = reg.snapshot();
    for (double q : {0.5, 0.9, 0.99, 0.999}) {
      INFO("q = " << q);
      const double exact_ms = exact_percentile(values, q) / 1e6;
      CHECK(std::abs(s.percentile_ms(q) - exact_ms) <= 0.03 * exact_ms);
    }
    CHECK(s.latency_max_ns == values.back());
    CHECK(s.percentile_ms(1.0) <= static_cast<double>(values.back()) / 1e6);
  };
  run("uniform 1 ms .. 100 ms", [&] {
    return static_cast<std::int64_t>(std::uniform_int_distribution<std::int64_t>(1'000'000, 100'000'000)(rng));
  });
  run("log-uniform 2 us .. 30 s", [&] {
    return static_cast<std::int64_t>(std::exp(std::uniform_real_distribution<double>(std::log(2e3), std::log(3e10))(rng)));
  });
  run("exponential, mean 5 ms", [&] {
    return 1000 + static_cast<std::int64_t>(std::exponential_distribution<double>(1.0 / 5e6)(rng));
  });
  run("bimodal 200 us / 40 ms", [&] {
    return (rng() % 100 < 95) ? std::int64_t{200'000} + static_cast<std::int64_t>(rng() % 1000)
                              : std::int64_t{40'000'000} + static_cast<std::int64_t>(rng() % 100000);
  });
}

TEST_CASE("metrics percentiles of an empty registry are zero", "[unit][middleware][metrics]") {
  metrics_registry reg(2);
  auto s = reg.snapshot();
  CHECK(s.percentile_ms(0.5) == 0);
  CHECK(s.avg_latency_ms() == 0);
  std::string out;
  reg.render_json(out);
  auto v = parse_json(out);
  CHECK(int_field(v, "total_requests") == 0);
  CHECK(v.find("latency_ms")->find("p99")->as_double() == 0);
  CHECK(v.find("requests_by_path")->size() == 0);
}

TEST_CASE("metrics registry bounds the per-path maps at max_paths plus other", "[unit][middleware][metrics]") {
  metrics_registry reg(2, metrics_options{.max_paths = 1000});
  std::string path;
  for (std::uint32_t i = 0; i < 1'000'000; ++i) {
    path = "/p/";
    path += std::to_string(i);
    reg.shard(i % 2).record(path, i % 4 == 0 ? 404 : 200, 1ms);
  }
  // Known paths keep being counted as themselves once the table is full.
  reg.shard(1).record("/p/0", 500, 1ms);
  reg.shard(0).record("other", 200, 1ms);  // a literal "other" joins the overflow key
  reg.shard(0).record(std::string(300, 'x'), 200, 1ms);  // too long to track

  CHECK(reg.tracked_paths() == 1000);
  auto s = reg.snapshot();
  CHECK(s.paths.size() == 1001);
  CHECK(s.paths.back().path == "other");
  CHECK(s.paths.back().requests == 1'000'000 - 1000 + 2);
  std::uint64_t sum = 0;
  std::uint64_t errors = 0;
  for (const auto& p : s.paths) {
    sum += p.requests;
    errors += p.errors;
  }
  CHECK(sum == 1'000'003);
  CHECK(errors == 250'000 + 1);
  CHECK(s.total_requests == 1'000'003);

  std::string out;
  reg.render_json(out);
  auto v = parse_json(out);
  const auto* by_path = v.find("requests_by_path");
  REQUIRE(by_path != nullptr);
  CHECK(by_path->size() <= 1001);
  CHECK(by_path->size() == 1001);
  CHECK(int_field(*by_path, "/p/0") == 2);
  CHECK(by_path->find("/p/999999") == nullptr);
  CHECK(v.find("errors_by_path")->size() <= 1001);
  CHECK(int_field(*v.find("errors_by_path"), "/p/0") == 2);
}

TEST_CASE("metrics registry with no path budget counts everything as other", "[unit][middleware][metrics]") {
  metrics_registry reg(1, metrics_options{.max_paths = 0});
  reg.shard(0).record("/a", 200, 1ms);
  reg.shard(0).record("/b", 500, 1ms);
  auto s = reg.snapshot();
  REQUIRE(s.paths.size() == 1);
  CHECK(s.paths[0].path == "other");
  CHECK(s.paths[0].requests == 2);
  CHECK(s.paths[0].errors == 1);
}

TEST_CASE("metrics JSON output is strict JSON with the seed's fields", "[unit][middleware][metrics]") {
  metrics_registry reg(2);
  std::int64_t live = 7;
  reg.add(gateway::core::stat_type::gauge, "live_connections", "Open client connections.", [&] { return live; });
  reg.add(gateway::core::stat_type::gauge, "upstream_idle", "Idle upstream connections.",
          [] { return std::int64_t{-1}; });
  reg.shard(0).record("/api/users", 200, 2ms);
  reg.shard(1).record("/api/users", 500, 4ms);
  reg.shard(1).record("/odd\"path\\\n\x01\xff", 404, 6ms);
  gateway::core::bump(reg.shard(0).stats().auth_rejected, 2);

  std::string out = "prefix:";  // render appends
  reg.render_json(out);
  REQUIRE(out.rfind("prefix:", 0) == 0);
  auto v = parse_json(out.substr(7));
  REQUIRE(v.is_object());
  std::vector<std::string> keys;
  for (const auto& m : v.members()) keys.push_back(m.key);
  CHECK(keys == std::vector<std::string>{"total_requests", "total_errors", "avg_latency_ms", "requests_by_path",
                                         "errors_by_path", "latency_ms", "counters", "gauges"});
  CHECK(int_field(v, "total_requests") == 3);
  CHECK(int_field(v, "total_errors") == 2);
  CHECK(v.find("avg_latency_ms")->as_double() == Approx(4.0));
  CHECK(v.find("requests_by_path")->size() == 2);
  CHECK(int_field(*v.find("requests_by_path"), "/api/users") == 2);
  // Bytes that are not UTF-8 come out as U+FFFD; the rest round-trips.
  CHECK(int_field(*v.find("errors_by_path"), "/odd\"path\\\n\x01\xEF\xBF\xBD") == 1);
  const auto* lat = v.find("latency_ms");
  REQUIRE(lat != nullptr);
  for (const char* k : {"p50", "p90", "p99", "p999", "max"}) REQUIRE(lat->find(k) != nullptr);
  CHECK(lat->find("p50")->as_double() == Approx(4.0).epsilon(0.02));
  CHECK(lat->find("max")->as_double() == Approx(6.0));
  CHECK(int_field(*v.find("counters"), "auth_rejected") == 2);
  CHECK(int_field(*v.find("counters"), "rate_limited") == 0);
  CHECK(int_field(*v.find("gauges"), "live_connections") == 7);
  CHECK(int_field(*v.find("gauges"), "upstream_idle") == -1);
  live = 9;  // read at render time
  out.clear();
  reg.render_json(out);
  CHECK(int_field(*parse_json(out).find("gauges"), "live_connections") == 9);
}

TEST_CASE("metrics registry rejects bad or clashing names at start-up", "[unit][middleware][metrics]") {
  using gateway::core::stat_type;
  metrics_registry reg(1);
  auto g = [] { return std::int64_t{1}; };
  CHECK_THROWS_AS(reg.add(stat_type::gauge, "", "", g), std::invalid_argument);
  CHECK_THROWS_AS(reg.add(stat_type::gauge, "9lives", "", g), std::invalid_argument);
  CHECK_THROWS_AS(reg.add(stat_type::gauge, "Live", "", g), std::invalid_argument);
  CHECK_THROWS_AS(reg.add(stat_type::gauge, "live-connections", "", g), std::invalid_argument);
  CHECK_THROWS_AS(reg.add(stat_type::counter, "requests_total", "", g), std::invalid_argument);
  CHECK_THROWS_AS(reg.add(stat_type::counter, "requests", "", g), std::invalid_argument);
  CHECK_THROWS_AS(reg.add(stat_type::gauge, "request_duration_seconds", "", g), std::invalid_argument);
  CHECK_THROWS_AS(reg.add(stat_type::gauge, "no_callback", "", {}), std::invalid_argument);
  // The registry's own request stats are registered already.
  CHECK_THROWS_AS(reg.add(stat_type::counter, "rate_limited", "", g), std::invalid_argument);
  reg.add(stat_type::gauge, "in_flight", "", g);
  CHECK_THROWS_AS(reg.add(stat_type::counter, "in_flight", "", g), std::invalid_argument);
  reg.add(stat_type::gauge, "broken", "", []() -> std::int64_t { throw std::runtime_error("x"); });
  auto s = reg.snapshot();
  REQUIRE(s.gauges.size() == 2);
  CHECK(s.gauges[1].second == 0);
}

namespace {
#define TEST_STATS(X)                                      \
  X(opened, counter, "test_opened", "Things opened") \
  X(open, gauge, "test_open", "Things open now")
struct test_stats {
  GATEWAY_STAT_SET(test_stats, TEST_STATS)
};
#undef TEST_STATS
}  // namespace

TEST_CASE("a stat set is exported once, summed over its shards, with its types in JSON and Prometheus",
          "[unit][middleware][metrics]") {
  metrics_registry reg(1);
  std::array<test_stats, 3> shards;
  reg.add_stats(std::span<const test_stats>(shards));
  gateway::core::bump(shards[0].opened, 5);
  gateway::core::bump(shards[2].opened, 2);
  gateway::core::bump(shards[1].open, 4);
  gateway::core::drop(shards[2].open, 1);

  std::string json_out;
  reg.render_json(json_out);
  auto v = parse_json(json_out);
  CHECK(int_field(*v.find("counters"), "test_opened") == 7);
  CHECK(int_field(*v.find("gauges"), "test_open") == 3);
  CHECK(v.find("gauges")->find("test_opened") == nullptr);

  std::string prom;
  reg.render_prometheus(prom);
  CHECK(prom.find("# TYPE gateway_test_opened_total counter\ngateway_test_opened_total 7\n") != std::string::npos);
  CHECK(prom.find("# TYPE gateway_test_open gauge\ngateway_test_open 3\n") != std::string::npos);
  CHECK(prom.find("# HELP gateway_test_opened_total Things opened\n") != std::string::npos);
  // Declared twice is refused like any duplicate name.
  CHECK_THROWS_AS(reg.add_stats(std::span<const test_stats>(shards)), std::invalid_argument);
}

TEST_CASE("prometheus label values escape backslash, quote and newline", "[unit][middleware][metrics]") {
  std::string out;
  gateway::middleware::append_prometheus_label_value(out, "a\\b\"c\nd\xC3\xA9\xFF");
  CHECK(out == "a\\\\b\\\"c\\nd\xC3\xA9\xEF\xBF\xBD");
}

TEST_CASE("metrics Prometheus output passes a strict line-format check", "[unit][middleware][metrics]") {
  metrics_registry reg(2);
  reg.add(gateway::core::stat_type::gauge, "live_connections", "Open client\nconnections \\ now.",
          [] { return std::int64_t{5}; });
  std::int64_t dropped = 4;
  reg.add(gateway::core::stat_type::counter, "access_log_dropped", "Lines dropped.", [&] { return dropped; });
  reg.shard(0).record("/api/a", 200, 300us);    // le 0.0005
  reg.shard(0).record("/api/a", 200, 500us);    // le 0.0005 exactly
  reg.shard(1).record("/api/a", 503, 501us);    // le 0.001
  reg.shard(1).record("/we\"ird\\pa\nth", 404, 2s);
  reg.shard(1).record("/slow", 200, 90s);       // only +Inf

  std::string out;
  reg.render_prometheus(out);
  auto r = check_prometheus(out);
  INFO(out);
  for (const auto& e : r.errors) FAIL_CHECK(e);
  CHECK(r.types["gateway_requests_total"] == "counter");
  CHECK(r.types["gateway_request_duration_seconds"] == "histogram");
  CHECK(r.types["gateway_live_connections"] == "gauge");
  CHECK(r.samples["gateway_requests_total"] == 5);
  CHECK(r.samples["gateway_errors_total"] == 2);
  CHECK(r.samples["gateway_request_duration_seconds_bucket{le=\"0.0005\"}"] == 2);
  CHECK(r.samples["gateway_request_duration_seconds_bucket{le=\"0.001\"}"] == 3);
  CHECK(r.samples["gateway_request_duration_seconds_bucket{le=\"2.5\"}"] == 4);
  CHECK(r.samples["gateway_request_duration_seconds_bucket{le=\"60\"}"] == 4);
  CHECK(r.samples["gateway_request_duration_seconds_bucket{le=\"+Inf\"}"] == 5);
  CHECK(r.samples["gateway_request_duration_seconds_count"] == 5);
  CHECK(r.samples["gateway_request_duration_seconds_sum"] == Approx(92.001301));
  CHECK(r.samples["gateway_path_requests_total{path=\"/api/a\"}"] == 3);
  CHECK(r.samples["gateway_path_requests_total{path=\"/we\\\"ird\\\\pa\\nth\"}"] == 1);
  CHECK(r.samples["gateway_path_errors_total{path=\"/api/a\"}"] == 1);
  CHECK(r.samples.count("gateway_path_errors_total{path=\"/slow\"}") == 0);
  CHECK(r.samples["gateway_access_log_dropped_total"] == 4);
  CHECK(r.samples["gateway_rate_limited_total"] == 0);
  CHECK(r.samples["gateway_live_connections"] == 5);
  CHECK(out.find("# HELP gateway_live_connections Open client\\nconnections \\\\ now.\n") != std::string::npos);
}

TEST_CASE("the strict Prometheus checker catches malformed output", "[unit][middleware][metrics]") {
  CHECK(check_prometheus("# TYPE a counter\na 1\n").errors.empty());
  CHECK_FALSE(check_prometheus("a 1\n").errors.empty());                                  // no TYPE
  CHECK_FALSE(check_prometheus("# TYPE a counter\na{p=\"x} 1\n").errors.empty());         // open quote
  CHECK_FALSE(check_prometheus("# TYPE a counter\na{p=\"\\t\"} 1\n").errors.empty());     // bad escape
  CHECK_FALSE(check_prometheus("# TYPE a counter\na 1 123\n").errors.empty());            // timestamp
  CHECK_FALSE(check_prometheus("# TYPE a counter\n# TYPE b counter\nb 1\na 1\n").errors.empty());
  CHECK_FALSE(check_prometheus("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n")
                  .errors.empty());  // not cumulative
  CHECK_FALSE(check_prometheus("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_count 2\n").errors.empty());
  CHECK_FALSE(check_prometheus("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n").errors.empty());
}

TEST_CASE("metrics JSON and Prometheus numbers agree", "[unit][middleware][metrics]") {
  metrics_registry reg(3);
  reg.add(gateway::core::stat_type::gauge, "in_flight", "Requests in flight.", [] { return std::int64_t{11}; });
  std::mt19937 rng(3);
  for (int i = 0; i < 5000; ++i) {
    const std::string path = "/r/" + std::to_string(rng() % 20);
    const int status = (rng() % 7 == 0) ? 500 : 200;
    reg.shard(static_cast<std::size_t>(i % 3)).record(path, status, std::chrono::microseconds(rng() % 200000));
  }
  gateway::core::bump(reg.shard(2).stats().rate_limited, 17);

  std::string json_text, prom_text;
  reg.render_json(json_text);
  reg.render_prometheus(prom_text);
  auto v = parse_json(json_text);
  auto p = check_prometheus(prom_text);
  for (const auto& e : p.errors) FAIL_CHECK(e);

  CHECK(p.samples["gateway_requests_total"] == static_cast<double>(int_field(v, "total_requests")));
  CHECK(p.samples["gateway_request_duration_seconds_count"] == static_cast<double>(int_field(v, "total_requests")));
  CHECK(p.samples["gateway_errors_total"] == static_cast<double>(int_field(v, "total_errors")));
  CHECK(p.samples["gateway_request_duration_seconds_sum"] / p.samples["gateway_requests_total"] * 1000 ==
        Approx(v.find("avg_latency_ms")->as_double()).epsilon(0.001));
  std::size_t json_paths = 0;
  for (const auto& m : v.find("requests_by_path")->members()) {
    ++json_paths;
    CHECK(p.samples["gateway_path_requests_total{path=\"" + m.key + "\"}"] == static_cast<double>(*m.value.as_int64()));
  }
  for (const auto& m : v.find("errors_by_path")->members())
    CHECK(p.samples["gateway_path_errors_total{path=\"" + m.key + "\"}"] == static_cast<double>(*m.value.as_int64()));
  std::size_t prom_paths = 0;
  for (const auto& [k, _] : p.samples) prom_paths += k.rfind("gateway_path_requests_total{", 0) == 0;
  CHECK(prom_paths == json_paths);
  CHECK(json_paths == 20);
  CHECK(p.samples["gateway_rate_limited_total"] == static_cast<double>(int_field(*v.find("counters"), "rate_limited")));
  CHECK(p.samples["gateway_in_flight"] == static_cast<double>(int_field(*v.find("gauges"), "in_flight")));
}

TEST_CASE("metrics can be rendered while workers record", "[unit][middleware][metrics]") {
  metrics_registry reg(2, metrics_options{.max_paths = 50});
  std::atomic<bool> stop{false};
  std::atomic<bool> go{false};
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < 2; ++w)
    workers.emplace_back([&, w] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < 20000; ++i)
        reg.shard(w).record("/w/" + std::to_string(i % 80), i % 5 ? 200 : 500, std::chrono::microseconds(i % 1000));
    });
  // Catch2 assertions are not thread-safe: the reader only counts.
  std::atomic<int> renders{0};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    std::string out;
    do {
      out.clear();
      reg.render_prometheus(out);
      if (!check_prometheus(out).errors.empty()) bad.fetch_add(1);
      out.clear();
      reg.render_json(out);
      if (!gateway::json::parse(out).has_value()) bad.fetch_add(1);
      renders.fetch_add(1);
    } while (!stop.load());
  });
  go = true;
  for (auto& t : workers) t.join();
  stop = true;
  reader.join();
  CHECK(renders.load() > 0);
  CHECK(bad.load() == 0);
  auto s = reg.snapshot();
  CHECK(s.total_requests == 40000);
  CHECK(s.total_errors == 8000);
  CHECK(reg.tracked_paths() == 50);
  CHECK(s.paths.size() == 51);
}
