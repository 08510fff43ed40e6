#include "gateway/middleware/metrics_registry.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <stdexcept>

#include "gateway/core/utf8.hpp"
#include "gateway/json/writer.hpp"

namespace gateway::middleware {

namespace {

constexpr std::uint32_t sub_count = 1u << latency_buckets::sub_bits;

std::size_t coarse_index(std::int64_t ns) noexcept {
  // Prometheus buckets count observations <= le.
  return static_cast<std::size_t>(
      std::lower_bound(prometheus_bounds_ns.begin(), prometheus_bounds_ns.end(), ns) -
      prometheus_bounds_ns.begin());
}

// HELP text escaping (exposition format 0.0.4): backslash and line feed.
void append_help(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void append_u64(std::string& out, std::uint64_t v) { json::append_number(out, v); }

void append_sample(std::string& out, std::string_view name, std::uint64_t v) {
  out += name;
  out += ' ';
  append_u64(out, v);
  out += '\n';
}

// Shortest fixed notation that reads back as the same double ("0.0005",
// "2.5", "60"): Prometheus parses le values as floats.
void append_le(std::string& out, std::int64_t ns) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, static_cast<double>(ns) / 1e9, std::chars_format::fixed);
  out.append(buf, r.ptr);
}

bool valid_name(std::string_view n) noexcept {
  if (n.empty() || (n[0] >= '0' && n[0] <= '9')) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

}  // namespace

namespace latency_buckets {

std::size_t index_of(std::int64_t ns) noexcept {
  if (ns < 0) ns = 0;
  const auto u = static_cast<std::uint64_t>(ns);
  if (u < (std::uint64_t{1} << min_exponent)) return static_cast<std::size_t>(u >> (min_exponent - sub_bits));
  const int e = std::bit_width(u) - 1;
  if (e >= max_exponent) return count - 1;
  return sub_count + static_cast<std::size_t>(e - min_exponent) * sub_count +
         static_cast<std::size_t>((u >> (e - sub_bits)) & (sub_count - 1));
}

std::int64_t lower_bound(std::size_t i) noexcept {
  if (i < sub_count) return static_cast<std::int64_t>(i) << (min_exponent - sub_bits);
  if (i >= count - 1) return std::int64_t{1} << max_exponent;
  const std::size_t j = i - sub_count;
  const int e = static_cast<int>(j / sub_count) + min_exponent;
  return (std::int64_t{1} << e) + static_cast<std::int64_t>(j % sub_count) * (std::int64_t{1} << (e - sub_bits));
}

std::int64_t width(std::size_t i) noexcept {
  if (i < sub_count) return std::int64_t{1} << (min_exponent - sub_bits);
  if (i >= count - 1) return 0;
  const int e = static_cast<int>((i - sub_count) / sub_count) + min_exponent;
  return std::int64_t{1} << (e - sub_bits);
}

}  // namespace latency_buckets

void append_prometheus_label_value(std::string& out, std::string_view v) {
  std::size_t i = 0;
  while (i < v.size()) {
    const char c = v[i];
    if (c == '\\') {
      out += "\\\\";
      ++i;
    } else if (c == '"') {
      out += "\\\"";
      ++i;
    } else if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (std::size_t n = core::utf8_sequence_length(v, i)) {
      out.append(v.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";  // the exposition format is UTF-8
      ++i;
    }
  }
}

// ---------------------------------------------------------------------------
// path_table

path_table::path_table(std::size_t max_paths, std::size_t max_path_length)
    : max_paths_(max_paths),
      max_path_length_(max_path_length),
      mask_(std::bit_ceil(std::max<std::size_t>(2, max_paths * 2)) - 1),
      slots_(std::make_unique<slot[]>(mask_ + 1)),
      names_(max_paths, nullptr) {
  if (max_paths >= not_found) throw std::invalid_argument("metrics max_paths too large");
}

std::uint32_t path_table::find(std::string_view path, std::uint64_t hash) const noexcept {
  // Load factor <= 1/2, so an empty slot ends every probe. A slot's hash and
  // text are written before its id is published with release order, and
  // never change afterwards.
  for (std::size_t pos = hash & mask_;; pos = (pos + 1) & mask_) {
    const slot& s = slots_[pos];
    const std::uint32_t id = s.id.load(std::memory_order_acquire);
    if (id == not_found) return not_found;
    if (s.hash == hash && s.text == path) return id;
  }
}

std::uint32_t path_table::id_of(std::string_view path) noexcept {
  // A literal "other" would collide with the overflow key in the output.
  if (path.size() > max_path_length_ || path == "other") return other_id();
  const std::uint64_t hash = std::hash<std::string_view>{}(path);
  if (std::uint32_t id = find(path, hash); id != not_found) return id;
  // Once full, unknown paths are "other" without touching the lock.
  if (size_.load(std::memory_order_acquire) >= max_paths_) return other_id();
  try {
    std::lock_guard lock(insert_mu_);
    if (std::uint32_t id = find(path, hash); id != not_found) return id;
    const std::size_t n = size_.load(std::memory_order_relaxed);
    if (n >= max_paths_) return other_id();
    std::size_t pos = hash & mask_;
    while (slots_[pos].id.load(std::memory_order_relaxed) != not_found) pos = (pos + 1) & mask_;
    slot& s = slots_[pos];
    s.hash = hash;
    s.text.assign(path);
    names_[n] = &s.text;
    s.id.store(static_cast<std::uint32_t>(n), std::memory_order_release);
    size_.store(n + 1, std::memory_order_release);
    return static_cast<std::uint32_t>(n);
  } catch (...) {
    return other_id();  // out of memory: count it, do not fail the request
  }
}

// ---------------------------------------------------------------------------
// metrics_shard

metrics_shard::metrics_shard(path_table& paths, std::size_t max_paths)
    : paths_(&paths),
      requests_by_path_(std::make_unique<counter[]>(max_paths + 1)),
      errors_by_path_(std::make_unique<counter[]>(max_paths + 1)) {}

void metrics_shard::record(std::string_view path, int status, std::chrono::nanoseconds latency) noexcept {
  const std::uint32_t id = paths_->id_of(path);
  const std::int64_t ns = latency.count() < 0 ? 0 : static_cast<std::int64_t>(latency.count());
  bump(requests_by_path_[id]);
  if (status >= 400) {
    bump(errors_);
    bump(errors_by_path_[id]);
  }
  bump(latency_sum_ns_, static_cast<std::uint64_t>(ns));
  if (static_cast<std::uint64_t>(ns) > latency_max_ns_.load(std::memory_order_relaxed))
    latency_max_ns_.store(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
  bump(fine_[latency_buckets::index_of(ns)]);
  bump(coarse_[coarse_index(ns)]);
}

// ---------------------------------------------------------------------------
// metrics_snapshot

double metrics_snapshot::avg_latency_ms() const noexcept {
  if (total_requests == 0) return 0;
  return static_cast<double>(latency_sum_ns) / static_cast<double>(total_requests) / 1e6;
}

double metrics_snapshot::percentile_ms(double q) const noexcept {
  std::uint64_t total = 0;
  for (std::uint64_t c : fine) total += c;
  if (total == 0) return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
  rank = std::clamp<std::uint64_t>(rank, 1, total);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < fine.size(); ++i) {
    seen += fine[i];
    if (seen < rank) continue;
    // The middle of the bucket: half a bucket width at most from the exact
    // value, i.e. 1/64 relative. Never above the largest value seen.
    std::int64_t v = i + 1 == fine.size() ? latency_max_ns
                                          : latency_buckets::lower_bound(i) + latency_buckets::width(i) / 2;
    if (v > latency_max_ns) v = latency_max_ns;
    return static_cast<double>(v) / 1e6;
  }
  return static_cast<double>(latency_max_ns) / 1e6;
}

// ---------------------------------------------------------------------------
// metrics_registry

metrics_registry::metrics_registry(std::size_t workers, metrics_options opts)
    : opts_(opts), paths_(opts.max_paths, opts.max_path_length) {
  if (workers == 0) throw std::invalid_argument("metrics registry needs at least one worker");
  shards_.reserve(workers);
  for (std::size_t i = 0; i < workers; ++i)
    shards_.push_back(std::unique_ptr<metrics_shard>(new metrics_shard(paths_, opts_.max_paths)));
  for (const auto& f : request_stats::fields()) {
    add(f.type, std::string(f.name), std::string(f.help), [this, field = f.field] {
      std::int64_t total = 0;
      for (const auto& sh : shards_) total += core::read(sh->stats_.*field);
      return total;
    });
  }
}

metrics_registry::~metrics_registry() = default;

void metrics_registry::add(core::stat_type type, std::string name, std::string help,
                           std::function<std::int64_t()> read) {
  if (!valid_name(name)) throw std::invalid_argument("bad metric name: " + name);
  for (const auto& f : figures_)
    if (f.name == name) throw std::invalid_argument("duplicate metric name: " + name);
  // Suffixes that Prometheus reserves for counters and histograms, and our
  // own families' names, would make two families share a sample name.
  for (std::string_view suffix : {"_total", "_bucket", "_sum", "_count", "_created"})
    if (std::string_view(name).ends_with(suffix))
      throw std::invalid_argument("metric name may not end in " + std::string(suffix) + ": " + name);
  for (std::string_view own : {"requests", "errors", "path_requests", "path_errors", "request_duration_seconds"})
    if (name == own) throw std::invalid_argument("metric name clashes with a built-in family: " + name);
  if (!read) throw std::invalid_argument("metric without a callback: " + name);
  figures_.push_back({type, std::move(name), std::move(help), std::move(read)});
}

metrics_snapshot metrics_registry::snapshot() const {
  constexpr auto relaxed = std::memory_order_relaxed;
  metrics_snapshot s;
  s.fine.assign(latency_buckets::count, 0);
  s.coarse.assign(prometheus_bounds_ns.size() + 1, 0);
  const std::size_t known = paths_.size();
  std::vector<metrics_snapshot::path_count> rows(known + 1);
  for (std::size_t id = 0; id < known; ++id) rows[id].path = paths_.name(static_cast<std::uint32_t>(id));
  rows[known].path = "other";
  const std::size_t other = paths_.other_id();

  for (const auto& sh : shards_) {
    s.total_errors += sh->errors_.load(relaxed);
    s.latency_sum_ns += sh->latency_sum_ns_.load(relaxed);
    s.latency_max_ns = std::max(s.latency_max_ns, static_cast<std::int64_t>(sh->latency_max_ns_.load(relaxed)));
    for (std::size_t i = 0; i < s.fine.size(); ++i) s.fine[i] += sh->fine_[i].load(relaxed);
    for (std::size_t i = 0; i < s.coarse.size(); ++i) s.coarse[i] += sh->coarse_[i].load(relaxed);
    for (std::size_t id = 0; id < known; ++id) {
      rows[id].requests += sh->requests_by_path_[id].load(relaxed);
      rows[id].errors += sh->errors_by_path_[id].load(relaxed);
    }
    rows[known].requests += sh->requests_by_path_[other].load(relaxed);
    rows[known].errors += sh->errors_by_path_[other].load(relaxed);
  }
  // total_requests is the histogram's count, so that the Prometheus
  // histogram and gateway_requests_total agree within one snapshot.
  for (std::uint64_t c : s.coarse) s.total_requests += c;

  std::sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(known),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  for (const auto& r : rows)
    if (r.requests != 0 || r.errors != 0) s.paths.push_back(r);

  for (const auto& f : figures_) {
    std::int64_t v = 0;
    try {
      v = f.read();
    } catch (...) {
      v = 0;  // a broken figure must not take /metrics down
    }
    (f.type == core::stat_type::counter ? s.counters : s.gauges).emplace_back(f.name, v);
  }
  return s;
}

void metrics_registry::render_json(std::string& out) const {
  const metrics_snapshot s = snapshot();
  out += "{\"total_requests\":";
  append_u64(out, s.total_requests);
  out += ",\"total_errors\":";
  append_u64(out, s.total_errors);
  out += ",\"avg_latency_ms\":";
  json::append_number(out, s.avg_latency_ms(), 3);

  auto append_map = [&](std::string_view key, bool errors) {
    out += ",\"";
    out += key;
    out += "\":{";
    bool first = true;
    for (const auto& r : s.paths) {
      const std::uint64_t v = errors ? r.errors : r.requests;
      if (v == 0) continue;
      if (!first) out += ',';
      first = false;
      json::append_string(out, r.path);
      out += ':';
      append_u64(out, v);
    }
    out += '}';
  };
  append_map("requests_by_path", false);
  append_map("errors_by_path", true);

  out += ",\"latency_ms\":{\"p50\":";
  json::append_number(out, s.percentile_ms(0.50), 3);
  out += ",\"p90\":";
  json::append_number(out, s.percentile_ms(0.90), 3);
  out += ",\"p99\":";
  json::append_number(out, s.percentile_ms(0.99), 3);
  out += ",\"p999\":";
  json::append_number(out, s.percentile_ms(0.999), 3);
  out += ",\"max\":";
  json::append_number(out, static_cast<double>(s.latency_max_ns) / 1e6, 3);
  auto append_figures = [&](std::string_view key, const auto& figures) {
    out += "},\"";
    out += key;
    out += "\":{";
    for (std::size_t i = 0; i < figures.size(); ++i) {
      if (i) out += ',';
      json::append_string(out, figures[i].first);
      out += ':';
      json::append_number(out, figures[i].second);
    }
  };
  append_figures("counters", s.counters);
  append_figures("gauges", s.gauges);
  out += '}';
  for (const auto& sec : sections_) {
    out += ',';
    json::append_string(out, sec.key);
    out += ':';
    sec.json(out);
  }
  out += '}';
}

void metrics_registry::add_section(std::string key, std::function<void(std::string&)> json,
                                   std::function<void(std::string&)> prometheus) {
  sections_.push_back({std::move(key), std::move(json), std::move(prometheus)});
}

void metrics_registry::render_prometheus(std::string& out) const {
  const metrics_snapshot s = snapshot();

  append_help(out, "gateway_requests_total", "Requests answered, any status.", "counter");
  append_sample(out, "gateway_requests_total", s.total_requests);
  append_help(out, "gateway_errors_total", "Requests answered with a status of 400 or more.", "counter");
  append_sample(out, "gateway_errors_total", s.total_errors);

  constexpr std::string_view hist = "gateway_request_duration_seconds";
  append_help(out, hist, "Time from the request head to the end of the response.", "histogram");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < s.coarse.size(); ++i) {
    cumulative += s.coarse[i];
    out += hist;
    out += "_bucket{le=\"";
    if (i < prometheus_bounds_ns.size()) append_le(out, prometheus_bounds_ns[i]);
    else out += "+Inf";
    out += "\"} ";
    append_u64(out, cumulative);
    out += '\n';
  }
  out += hist;
  out += "_sum ";
  json::append_number(out, static_cast<double>(s.latency_sum_ns) / 1e9, 9);
  out += '\n';
  out += hist;
  out += "_count ";
  append_u64(out, s.total_requests);
  out += '\n';

  auto append_paths = [&](std::string_view name, std::string_view help, bool errors) {
    append_help(out, name, help, "counter");
    for (const auto& r : s.paths) {
      const std::uint64_t v = errors ? r.errors : r.requests;
      if (v == 0) continue;
      out += name;
      out += "{path=\"";
      append_prometheus_label_value(out, r.path);
      out += "\"} ";
      append_u64(out, v);
      out += '\n';
    }
  };
  append_paths("gateway_path_requests_total",
               "Requests by path (a bounded set of paths; the rest under path=\"other\").", false);
  append_paths("gateway_path_errors_total",
               "Requests answered with a status of 400 or more, by path (bounded as above).", true);

  std::string name;
  std::size_t counter = 0, gauge = 0;
  for (const auto& f : figures_) {
    const bool is_counter = f.type == core::stat_type::counter;
    const auto& [_, value] = is_counter ? s.counters[counter++] : s.gauges[gauge++];
    name = "gateway_";
    name += f.name;
    if (is_counter) name += "_total";
    append_help(out, name, f.help, is_counter ? "counter" : "gauge");
    out += name;
    out += ' ';
    json::append_number(out, value);
    out += '\n';
  }
  for (const auto& sec : sections_) sec.prometheus(out);
}

}  // namespace gateway::middleware
