#include "tests/perf/gate/gates.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "gateway/json/reader.hpp"
#include "gateway/json/writer.hpp"
#include "tests/perf/blocking_http.hpp"
#include "tests/perf/gate/alloc_counters.hpp"

namespace gateway::perf {

using namespace std::chrono_literals;

namespace {

// The proxied request every deterministic gate sends.
const std::string gate_request =
    "GET /api/items?page=1 HTTP/1.1\r\nHost: perf\r\nX-API-Key: " + std::string(perf_api_key) + "\r\n\r\n";

// Below this many calls per request a kind is noise (a timer, a trim) and
// neither printed nor kept in the baseline; it still counts if it grows.
constexpr double rare_kind = 0.005;

// Kinds whose count depends on timing, not on the code path of a request:
// how often the event loop waits (and polls), and the housekeeping: cross-
// thread wake-ups, the timer queue's re-arming, what the allocator's trim
// (every 2 s) and heap growth do.
const std::set<std::string, std::less<>> wait_kinds = {"epoll_wait", "epoll_pwait", "epoll_pwait2"};
const std::set<std::string, std::less<>> housekeeping_kinds = {"futex", "timerfd_settime", "madvise",
                                                               "munmap", "mprotect", "brk"};
// Socket I/O whose failures are timing: Asio tries a read (or write) before
// waiting for readiness, and whether the peer's bytes are there yet (EAGAIN)
// depends on scheduling. Their successful calls are exact.
const std::set<std::string, std::less<>> speculative_kinds = {
    "read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg", "accept", "accept4", "connect"};

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

double median_of(std::vector<double> v) {
  if (v.empty()) return not_measured;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string number_text(double v) {
  if (!std::isfinite(v)) return "-";
  if (std::fabs(v) >= 1000) return fmt("%.0f", v);
  return fmt("%.3f", v);
}

// The gateway's flags in every gate run: perf_fixture's (auth and the rate
// limiter on the path, no access log), a fixed worker count so that figures
// do not depend on the machine's cores, and a /logs ring that the warm-up
// fills, so the counted requests recycle its entries as in steady state.
std::vector<std::string> gate_flags(unsigned backend_port) {
  auto f = gateway_flags(backend_port);
  f.insert(f.end(), {"--threads", "1", "--log-capacity", "1000"});
  return f;
}

// The page of alloc_counters.hpp, mapped from a file in `dir`.
class counters_page {
 public:
  explicit counters_page(std::string path) : path_(std::move(path)) {
    const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::ftruncate(fd, alloc_counters_size) != 0) throw std::runtime_error("cannot create " + path_);
    void* p = ::mmap(nullptr, alloc_counters_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error("cannot map " + path_);
    page_ = new (p) alloc_counters{};
  }
  ~counters_page() { ::munmap(page_, alloc_counters_size); }
  counters_page(const counters_page&) = delete;
  counters_page& operator=(const counters_page&) = delete;
  const std::string& path() const noexcept { return path_; }
  alloc_counters& operator*() const noexcept { return *page_; }
  alloc_counters* operator->() const noexcept { return page_; }

 private:
  std::string path_;
  alloc_counters* page_ = nullptr;
};

void stop(started& gw, std::chrono::seconds limit) {
  gw.proc->signal(SIGTERM);
  gw.proc->wait_exit(std::chrono::duration_cast<std::chrono::milliseconds>(limit));
}

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// --- baseline file -------------------------------------------------------------

void read_map(const json::value* obj, std::map<std::string, double>& into) {
  if (obj == nullptr) return;
  for (const auto& m : obj->members())
    if (m.value.is_number()) into[std::string(m.key)] = m.value.as_double();
}

void read_shape(const json::value* v, shape_figures& s) {
  if (v == nullptr) return;
  if (const json::value* a = v->find("allocations"); a != nullptr && a->is_number()) s.allocations = a->as_double();
  read_map(v->find("syscalls_exact"), s.syscalls_exact);
  if (const json::value* loose = v->find("syscalls_loose"))
    for (const auto& tool : loose->members()) read_map(&tool.value, s.syscalls_loose[std::string(tool.key)]);
  read_map(v->find("instructions"), s.instructions);
}

template <typename T>
void read_number(const json::value& obj, const char* key, T& into) {
  if (const json::value* v = obj.find(key); v != nullptr && v->is_number()) into = static_cast<T>(v->as_double());
}

void write_map(std::string& out, const std::map<std::string, double>& m, int precision) {
  out += "{";
  bool first = true;
  for (const auto& [k, v] : m) {
    out += first ? "" : ", ";
    first = false;
    json::append_string(out, k);
    out += ": ";
    json::append_number(out, v, precision);
  }
  out += "}";
}

void write_shape(std::string& out, const char* name, const shape_figures& s) {
  out += "  ";
  json::append_string(out, name);
  out += ": {\n    \"allocations\": ";
  if (s.allocations) json::append_number(out, *s.allocations, 3);
  else out += "null";
  out += ",\n    \"syscalls_exact\": ";
  write_map(out, s.syscalls_exact, 3);
  out += ",\n    \"syscalls_loose\": {";
  bool first = true;
  for (const auto& [tool, groups] : s.syscalls_loose) {
    out += first ? "" : ", ";
    first = false;
    json::append_string(out, tool);
    out += ": ";
    write_map(out, groups, 3);
  }
  out += "}";
  out += ",\n    \"instructions\": ";
  write_map(out, s.instructions, 0);
  out += "\n  },\n";
}

}  // namespace

std::optional<gate_baseline> read_baseline(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path;
    return std::nullopt;
  }
  const auto parsed = json::parse(read_file_text(path));
  if (!parsed) {
    error = path + ": " + parsed.error().message;
    return std::nullopt;
  }
  const json::value& doc = parsed.value();
  if (number_at(doc, {"schema_version"}) != 2) {
    error = path + ": schema_version 2 expected";
    return std::nullopt;
  }
  gate_baseline b;
  if (const json::value* c = doc.find("comment")) b.comment = std::string(c->as_string());
  if (const json::value* s = doc.find("shapes")) {
    read_number(*s, "warmup_one", b.warmup_one);
    read_number(*s, "requests_one", b.requests_one);
    read_number(*s, "connections_many", b.connections_many);
    read_number(*s, "warmup_many", b.warmup_many);
    read_number(*s, "requests_many", b.requests_many);
    read_number(*s, "instructions_one", b.instructions_one);
    read_number(*s, "instructions_many", b.instructions_many);
    read_number(*s, "idle_connections", b.idle_connections);
  }
  if (const json::value* t = doc.find("tolerance")) {
    read_number(*t, "allocations_per_request", b.allocations_slack);
    read_number(*t, "syscalls_exact_per_request", b.syscalls_exact_slack);
    read_map(t->find("syscalls_loose_per_request"), b.syscalls_loose_slack);
    read_number(*t, "instructions_ratio", b.instructions_ratio);
    read_number(*t, "rss_ratio", b.rss_ratio);
  }
  read_shape(doc.find("one_connection"), b.one);
  read_shape(doc.find("many_connections"), b.many);
  if (const json::value* r = doc.find("rss_per_idle_connection_bytes"); r != nullptr && r->is_number())
    b.rss_per_connection = r->as_double();
  if (const json::value* s = doc.find("side_by_side")) {
    auto& x = b.side_by_side;
    read_number(*s, "connections", x.connections);
    if (const json::value* d = s->find("duration"); d != nullptr && d->is_string()) x.duration = std::string(d->as_string());
    read_number(*s, "min_rounds", x.min_rounds);
    read_number(*s, "max_rounds", x.max_rounds);
    read_number(*s, "confidence", x.confidence);
    read_number(*s, "resamples", x.resamples);
    read_number(*s, "throughput_limit", x.throughput_limit);
    read_number(*s, "cpu_limit", x.cpu_limit);
  }
  const bool sane = b.requests_one > 0 && b.connections_many > 0 && b.requests_many > 0 && b.instructions_one > 0 &&
                    b.instructions_many > 0 && b.idle_connections > 0 && b.side_by_side.min_rounds >= 5 &&
                    b.side_by_side.max_rounds >= b.side_by_side.min_rounds && b.side_by_side.confidence > 0 &&
                    b.side_by_side.confidence < 1 && b.side_by_side.resamples >= 100 &&
                    b.side_by_side.throughput_limit < 1 && b.side_by_side.cpu_limit > 1;
  if (!sane) {
    error = path + ": a shape has no requests, or side_by_side needs min_rounds >= 5 <= max_rounds, "
                   "0 < confidence < 1, resamples >= 100, throughput_limit < 1 < cpu_limit";
    return std::nullopt;
  }
  return b;
}

std::string baseline_json(const gate_baseline& b) {
  std::string out = "{\n  \"schema_version\": 2,\n  \"comment\": ";
  json::append_string(out, b.comment);
  out += ",\n  \"shapes\": {";
  const std::pair<const char*, unsigned> shapes[] = {
      {"warmup_one", b.warmup_one},         {"requests_one", b.requests_one},
      {"connections_many", b.connections_many}, {"warmup_many", b.warmup_many},
      {"requests_many", b.requests_many},   {"instructions_one", b.instructions_one},
      {"instructions_many", b.instructions_many}, {"idle_connections", b.idle_connections}};
  bool first = true;
  for (const auto& [k, v] : shapes) {
    out += first ? "" : ", ";
    first = false;
    json::append_string(out, k);
    out += ": " + std::to_string(v);
  }
  out += "},\n  \"tolerance\": {\"allocations_per_request\": ";
  json::append_number(out, b.allocations_slack, 3);
  out += ", \"syscalls_exact_per_request\": ";
  json::append_number(out, b.syscalls_exact_slack, 3);
  out += ", \"syscalls_loose_per_request\": ";
  write_map(out, b.syscalls_loose_slack, 3);
  out += ", \"instructions_ratio\": ";
  json::append_number(out, b.instructions_ratio, 3);
  out += ", \"rss_ratio\": ";
  json::append_number(out, b.rss_ratio, 3);
  out += "},\n";
  write_shape(out, "one_connection", b.one);
  write_shape(out, "many_connections", b.many);
  out += "  \"rss_per_idle_connection_bytes\": ";
  if (b.rss_per_connection) json::append_number(out, *b.rss_per_connection, 0);
  else out += "null";
  const auto& s = b.side_by_side;
  out += ",\n  \"side_by_side\": {\"connections\": " + std::to_string(s.connections) + ", \"duration\": ";
  json::append_string(out, s.duration);
  out += ", \"min_rounds\": " + std::to_string(s.min_rounds) + ", \"max_rounds\": " + std::to_string(s.max_rounds) +
         ", \"confidence\": ";
  json::append_number(out, s.confidence, 3);
  out += ", \"resamples\": " + std::to_string(s.resamples) + ", \"throughput_limit\": ";
  json::append_number(out, s.throughput_limit, 3);
  out += ", \"cpu_limit\": ";
  json::append_number(out, s.cpu_limit, 3);
  out += "}\n}\n";
  return out;
}

std::optional<gate_selection> parse_gate_selection(std::string_view list) {
  gate_selection s{false, false, false, false, false};
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view name = list.substr(0, comma);
    if (name == "allocations") s.allocations = true;
    else if (name == "syscalls") s.syscalls = true;
    else if (name == "instructions") s.instructions = true;
    else if (name == "rss") s.rss = true;
    else if (name == "side-by-side") s.side_by_side = true;
    else return std::nullopt;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return s;
}

// --- the deterministic measurements ----------------------------------------------

deterministic_measurement measure_deterministic(const system_under_test& s, const gate_baseline& b,
                                                const gate_selection& which, std::ostream& log) {
  const auto started_at = std::chrono::steady_clock::now();
  const auto phase = [&](const char* what) {
    log << "perf gate: " << s.label << ": " << what << " at "
        << std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count() << " s\n";
  };
  deterministic_measurement m;
  std::optional<syscall_tool> stool;
  std::optional<instruction_tool> itool;
  std::string why;
  if (which.syscalls) {
    stool = pick_syscall_tool(why);
    if (stool) m.syscall_tool = name_of(*stool);
    else m.problems.push_back("system calls: no counting tool works here (" + why + ")");
  }
  if (which.instructions) {
    itool = pick_instruction_tool(why);
    if (itool) m.instruction_tool = name_of(*itool);
    else m.problems.push_back("instructions: no counting tool works here (" + why + ")");
  }
  raise_open_file_limit();
  temp_dir dir;
  std::uint64_t failed = 0;
  try {
    auto backend = start_echo_backend({"--threads", "1"});
    const auto flags = gate_flags(backend.port);
    // Instructions over `per_connection` requests on every connection of
    // `clients`, the gateway quiescent at both edges (`quiet`: how long to
    // wait for that; callgrind is slow).
    const auto count_instructions = [&](int pid, blocking_clients& clients, unsigned per_connection,
                                        shape_measurement& out, std::chrono::seconds quiet) {
      out.instruction_requests = per_connection * static_cast<unsigned>(clients.size());
      if (!wait_quiescent(pid, quiet)) m.problems.emplace_back("the gateway did not go quiet before a window");
      instruction_window w(*itool, pid, dir);
      failed += clients.run_in_waves(per_connection);
      if (!wait_quiescent(pid, quiet)) m.problems.emplace_back("the gateway did not go quiet after a window");
      out.instructions = w.end();
    };

    const bool native = which.allocations || which.syscalls || which.rss || itool == instruction_tool::perf;
    if (native) {
      counters_page page(dir.file("alloc-counters"));
      auto env = s.env;
      env.push_back("LD_PRELOAD=" + bin_path(alloc_preload_name));
      env.push_back(std::string(alloc_counters_env) + "=" + page.path());
      const char* trace = std::getenv("GATEWAY_PERF_ALLOC_TRACE");
      const std::string trace_file = dir.file("alloc-traces");
      if (trace != nullptr) env.push_back(std::string(alloc_trace_file_env) + "=" + trace_file);
      auto gw = start_gateway_binary(s.binary, flags, env);
      const int pid = gw.proc->pid();
      if (page->allocations.load() == 0)
        m.problems.push_back("allocations: the counter saw none at start-up (is " + std::string(alloc_preload_name) +
                             " built and preloaded?)");
      blocking_clients one(static_cast<std::uint16_t>(gw.port), 1, gate_request);
      blocking_clients many(static_cast<std::uint16_t>(gw.port), b.connections_many, gate_request);
      phase("native gateway started");
      failed += one.run_in_waves(b.warmup_one);
      failed += many.run_in_waves(b.warmup_many);
      phase("warmed up");

      // One window: allocations and system calls over `per_connection`
      // requests on every connection of `clients`, the gateway quiescent at
      // both edges.
      const auto window = [&](blocking_clients& clients, unsigned per_connection, shape_measurement& out,
                              bool first) {
        out.requests = per_connection * static_cast<unsigned>(clients.size());
        if (!wait_quiescent(pid, 10s)) m.problems.emplace_back("the gateway did not go quiet before a window");
        std::unique_ptr<syscall_window> sys;
        if (stool) sys = std::make_unique<syscall_window>(*stool, pid, dir);
        if (first && trace != nullptr) page->trace_budget.store(static_cast<std::uint32_t>(std::atoi(trace)));
        const std::uint64_t a0 = page->allocations.load();
        failed += clients.run_in_waves(per_connection);
        if (!wait_quiescent(pid, 10s)) m.problems.emplace_back("the gateway did not go quiet after a window");
        const std::uint64_t a1 = page->allocations.load();
        if (sys) out.syscalls = sys->end();
        if (which.allocations) out.allocations = static_cast<double>(a1 - a0) / out.requests;
      };
      if (which.allocations || which.syscalls) {
        window(one, b.requests_one, m.one, true);
        window(many, b.requests_many, m.many, false);
        phase("allocations and system calls counted");
      }
      if (itool == instruction_tool::perf) {
        count_instructions(pid, one, b.instructions_one, m.one, 10s);
        count_instructions(pid, many, b.instructions_many, m.many, 10s);
      }
      if (which.rss) {
        // RSS moves with the housekeeping trim every 2 s: each figure is
        // taken once it has held still (within 64 KiB) for 2.5 s.
        const auto before = settled_rss(pid, 2500ms, 64 * 1024, 20s);
        blocking_clients idle(static_cast<std::uint16_t>(gw.port), b.idle_connections, gate_request);
        failed += idle.run_one_at_a_time(1);
        const auto after = settled_rss(pid, 2500ms, 64 * 1024, 20s);
        if (before && after)
          m.rss_per_connection = (static_cast<double>(*after) - static_cast<double>(*before)) / b.idle_connections;
        else
          m.problems.emplace_back("rss: the gateway's RSS did not settle within 20 s");
        phase("rss measured");
      }
      stop(gw, 15s);
      if (trace != nullptr) m.alloc_traces = read_file_text(trace_file);
    }

    if (itool == instruction_tool::callgrind) {
      auto gw = start_gateway_binary(s.binary, flags, s.env, callgrind_command(dir), 120s);
      const int pid = gw.proc->pid();
      phase("gateway started under callgrind");
      blocking_clients one(static_cast<std::uint16_t>(gw.port), 1, gate_request);
      blocking_clients many(static_cast<std::uint16_t>(gw.port), b.connections_many, gate_request);
      failed += one.run_in_waves(b.warmup_one);
      failed += many.run_in_waves(b.warmup_many);
      phase("warmed up under callgrind");
      count_instructions(pid, one, b.instructions_one, m.one, 30s);
      count_instructions(pid, many, b.instructions_many, m.many, 30s);
      phase("instructions counted");
      stop(gw, 60s);
      phase("callgrind gateway stopped");
    }
    backend.proc->signal(SIGTERM);
    backend.proc->wait_exit(10s);
  } catch (const std::exception& e) {
    m.problems.push_back(e.what());
  }
  if (failed > 0) m.problems.push_back(std::to_string(failed) + " requests did not get a complete 200");
  for (const auto& p : m.problems) log << "perf gate: problem: " << p << "\n";
  return m;
}

std::optional<double> instructions_per_request(const shape_measurement& sm) noexcept {
  if (!sm.instructions || sm.instruction_requests == 0) return std::nullopt;
  return static_cast<double>(*sm.instructions) / sm.instruction_requests;
}

syscall_rates classify_syscalls(const syscall_counts& counts, unsigned requests) {
  syscall_rates r;
  if (requests == 0) return r;
  const double n = requests;
  for (const char* g : loose_groups) r.loose[g] = 0;
  for (const auto& [kind, c] : counts) {
    if (wait_kinds.count(kind) != 0 || housekeeping_kinds.count(kind) != 0) {
      r.loose[wait_kinds.count(kind) != 0 ? "waits" : "housekeeping"] += static_cast<double>(c.calls) / n;
      continue;
    }
    const double failed = static_cast<double>(std::min(c.calls, c.errors)) / n;
    const double ok = static_cast<double>(c.calls) / n - failed;
    if (ok > 0) r.exact[kind] = ok;
    if (speculative_kinds.count(kind) != 0) r.loose["found-nothing"] += failed;
    else if (failed > 0) r.exact[kind + " failed"] = failed;
  }
  return r;
}

namespace {

std::string shape_label(bool one, const gate_baseline& b) {
  return one ? "1conn" : std::to_string(b.connections_many) + "conn";
}

std::string missing_baseline(const std::string& what) {
  return "no baseline for " + what + " (scripts/perf-gate.sh --update-baseline records one)";
}

}  // namespace

std::vector<gate_result> judge_deterministic(const deterministic_measurement& m, const gate_baseline& b,
                                             const gate_selection& which) {
  std::vector<gate_result> out;
  const auto upper = [&](std::string name, std::string unit, double measured, double baseline, double limit,
                         std::string note) {
    gate_result r{std::move(name), std::move(unit), measured, baseline, limit, false, std::move(note)};
    r.pass = std::isfinite(measured) && std::isfinite(limit) && measured <= limit;
    if (!std::isfinite(baseline) && r.note.empty()) r.note = missing_baseline(r.name);
    if (!std::isfinite(measured) && r.note.empty()) r.note = "not measured (see the problems above)";
    out.push_back(std::move(r));
  };
  for (const bool is_one : {true, false}) {
    const shape_measurement& sm = is_one ? m.one : m.many;
    const shape_figures& bf = is_one ? b.one : b.many;
    const std::string shape = shape_label(is_one, b);
    if (which.allocations) {
      const double base = bf.allocations.value_or(not_measured);
      upper("allocations." + shape, "allocations per request", sm.allocations.value_or(not_measured), base,
            base + b.allocations_slack, "");
    }
    if (which.syscalls) {
      if (!sm.syscalls) {
        upper("syscalls." + shape, "calls per request", not_measured, not_measured, not_measured,
              m.syscall_tool.empty() ? "no system-call counter works here" : "not measured (see the problems above)");
      } else {
        const syscall_rates rates = classify_syscalls(*sm.syscalls, sm.requests);
        std::set<std::string> kinds;
        for (const auto& [k, v] : rates.exact) kinds.insert(k);
        for (const auto& [k, v] : bf.syscalls_exact) kinds.insert(k);
        if (bf.syscalls_exact.empty())
          upper("syscalls." + shape, "calls per request", 0, not_measured, not_measured, "");
        for (const auto& kind : kinds) {
          const auto mi = rates.exact.find(kind);
          const auto bi = bf.syscalls_exact.find(kind);
          const double measured = mi != rates.exact.end() ? mi->second : 0.0;
          const double base = bi != bf.syscalls_exact.end() ? bi->second : 0.0;
          if (measured < rare_kind && base < rare_kind) continue;
          upper("syscalls." + shape + "." + kind, "successful calls per request", measured, base,
                base + b.syscalls_exact_slack, m.syscall_tool);
        }
        const auto bt = bf.syscalls_loose.find(m.syscall_tool);
        for (const char* group : loose_groups) {
          double base = not_measured;
          if (bt != bf.syscalls_loose.end())
            if (const auto g = bt->second.find(group); g != bt->second.end()) base = g->second;
          const auto slack = b.syscalls_loose_slack.find(group);
          upper("syscalls." + shape + "." + group, "calls per request (loose)", rates.loose.at(group), base,
                base + (slack != b.syscalls_loose_slack.end() ? slack->second : not_measured),
                std::isfinite(base) ? m.syscall_tool
                                    : missing_baseline(std::string(group) + " counted by " + m.syscall_tool));
        }
      }
    }
    if (which.instructions) {
      const double measured = instructions_per_request(sm).value_or(not_measured);
      const auto bi = bf.instructions.find(m.instruction_tool);
      const double base = bi != bf.instructions.end() ? bi->second : not_measured;
      upper("instructions." + shape, "instructions per request", measured, base, base * (1 + b.instructions_ratio),
            std::isfinite(base) || m.instruction_tool.empty()
                ? m.instruction_tool
                : missing_baseline("instructions counted by " + m.instruction_tool));
    }
  }
  if (which.rss) {
    const double base = b.rss_per_connection.value_or(not_measured);
    upper("rss.idle-connection", "bytes per idle connection", m.rss_per_connection.value_or(not_measured), base,
          base * (1 + b.rss_ratio), "");
  }
  if (!m.problems.empty()) {
    std::string all;
    for (const auto& p : m.problems) all += (all.empty() ? "" : "; ") + p;
    out.push_back({"setup", "problems", static_cast<double>(m.problems.size()), 0, 0, false, all});
  }
  return out;
}

void update_baseline(gate_baseline& b, const std::vector<deterministic_measurement>& runs) {
  if (runs.empty()) return;
  // The median of what the runs measured, for each figure they all have.
  const auto median = [&](auto figure) -> std::optional<double> {
    std::vector<double> v;
    for (const auto& m : runs)
      if (const std::optional<double> x = figure(m)) v.push_back(*x);
    if (v.size() != runs.size()) return std::nullopt;
    return median_of(v);
  };
  const std::string& stool = runs.front().syscall_tool;
  const std::string& itool = runs.front().instruction_tool;
  for (const bool is_one : {true, false}) {
    const auto shape = [is_one](const deterministic_measurement& m) -> const shape_measurement& {
      return is_one ? m.one : m.many;
    };
    shape_figures& bf = is_one ? b.one : b.many;
    if (auto a = median([&](const auto& m) { return shape(m).allocations; })) bf.allocations = *a;
    std::vector<syscall_rates> rates;
    for (const auto& m : runs)
      if (shape(m).syscalls) rates.push_back(classify_syscalls(*shape(m).syscalls, shape(m).requests));
    if (!rates.empty() && rates.size() == runs.size()) {
      std::set<std::string> kinds;
      for (const auto& r : rates)
        for (const auto& [k, v] : r.exact) kinds.insert(k);
      bf.syscalls_exact.clear();
      for (const auto& kind : kinds) {
        std::vector<double> v;
        for (const auto& r : rates) v.push_back(r.exact.count(kind) != 0 ? r.exact.at(kind) : 0.0);
        if (const double m = median_of(v); m >= rare_kind) bf.syscalls_exact[kind] = m;
      }
      for (const char* group : loose_groups) {
        std::vector<double> v;
        for (const auto& r : rates) v.push_back(r.loose.at(group));
        bf.syscalls_loose[stool][group] = median_of(v);
      }
    }
    if (auto i = median([&](const auto& m) { return instructions_per_request(shape(m)); })) bf.instructions[itool] = *i;
  }
  if (auto r = median([](const auto& m) { return m.rss_per_connection; })) b.rss_per_connection = *r;
}

// --- side by side ------------------------------------------------------------------


ratio_stats bootstrap_median(const std::vector<double>& ratios, double confidence, unsigned resamples) {
  ratio_stats s;
  s.ratios = ratios;
  if (ratios.empty() || resamples == 0) return s;
  s.median = median_of(ratios);
  std::mt19937_64 rng(0x5eed5eedULL);
  std::uniform_int_distribution<std::size_t> pick(0, ratios.size() - 1);
  std::vector<double> medians(resamples), sample(ratios.size());
  for (auto& med : medians) {
    for (auto& x : sample) x = ratios[pick(rng)];
    med = median_of(sample);
  }
  std::sort(medians.begin(), medians.end());
  const double tail = (1 - confidence) / 2;
  s.low = medians[static_cast<std::size_t>(tail * resamples)];
  s.high = medians[std::min<std::size_t>(resamples - 1, static_cast<std::size_t>((1 - tail) * resamples))];
  return s;
}

bool side_by_side_fails(const ratio_stats& s, double limit, bool higher_is_better) {
  if (!std::isfinite(s.low) || !std::isfinite(s.high)) return true;
  return higher_is_better ? !(s.low > limit) : !(s.high < limit);
}

bool side_by_side_undecided(const ratio_stats& s, double limit) {
  return !std::isfinite(s.low) || (s.low <= limit && limit <= s.high);
}

namespace {

// Nanoseconds every thread of `pid` has run (schedstat's first field,
// summed over /proc/PID/task): precise, unlike utime + stime in ticks.
double cpu_ns(int pid) {
  double total = 0;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(dir + "/" + e->d_name + "/schedstat");
      double ns = 0;
      if (in >> ns) total += ns;
    }
    ::closedir(d);
  }
  return total;
}

}  // namespace

namespace {

// Pins every thread of `pid` to `cpu`.
void pin(int pid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ::sched_setaffinity(std::atoi(e->d_name), sizeof set, &set);
    ::closedir(d);
  }
}

// The CPUs the rounds alternate between: the first two this process may
// run on (one, on a machine that has one).
std::vector<int> round_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

// One chain of the comparison: its own echo_backend and gateway.
struct chain {
  const system_under_test* system = nullptr;
  started backend, gateway;
};

// One run of a chain: requests, req/s, and the CPU the gateway and the
// whole chain (gateway, echo_backend, loadtest) used, in ns.
struct chain_run {
  double requests = 0, rps = 0, gateway_ns = 0, chain_ns = 0;
  std::string problem;
};

}  // namespace

std::map<std::string, std::vector<gate_result>> run_side_by_side(const system_under_test& base,
                                                                  const std::vector<system_under_test>& candidates,
                                                                  const side_by_side_settings& settings,
                                                                  std::ostream& log) {
  raise_open_file_limit();
  std::map<std::string, std::vector<gate_result>> out;
  const auto fail_all = [&](const std::string& why) {
    log << "perf gate: problem: " << why << "\n";
    for (const auto& c : candidates)
      out[c.label] = {{"side-by-side.setup", "problems", 1, 0, 0, false, why}};
    return out;
  };
  const std::vector<int> cpus = round_cpus();
  if (cpus.empty()) return fail_all("side by side: sched_getaffinity failed");
  for (const auto& candidate : candidates) {
    temp_dir dir;
    std::vector<std::string> problems;
    // Per chain (0 base, 1 candidate), per round: requests per CPU-second
    // of the chain, gateway CPU per request (us) and plain req/s.
    std::vector<double> capacity[2], cpu[2], rps[2];
    std::vector<double> capacity_ratios, cpu_ratios;  // per round
    try {
      chain chains[2];
      const system_under_test* systems[2] = {&base, &candidate};
      for (int i = 0; i < 2; ++i) {
        chains[i].system = systems[i];
        chains[i].backend = start_echo_backend({"--threads", "1"});
        auto flags = gateway_flags(chains[i].backend.port);
        flags.insert(flags.end(), {"--threads", "1"});
        chains[i].gateway = start_gateway_binary(systems[i]->binary, flags, systems[i]->env);
      }
      const auto stats = [&](const std::vector<double>& ratios) {
        return bootstrap_median(ratios, settings.confidence, settings.resamples);
      };
      for (unsigned round = 1; round <= settings.max_rounds; ++round) {
        // Both chains on one CPU, the other CPU in the next round.
        const int core = cpus[round % cpus.size()];
        chain_run runs[2];
        std::unique_ptr<child_process> load[2];
        double before_gw[2], before_chain[2];
        for (int i = 0; i < 2; ++i) {
          pin(chains[i].gateway.proc->pid(), core);
          pin(chains[i].backend.proc->pid(), core);
          before_gw[i] = cpu_ns(chains[i].gateway.proc->pid());
          before_chain[i] = before_gw[i] + cpu_ns(chains[i].backend.proc->pid());
        }
        for (int i = 0; i < 2; ++i) {
          // loadtest inherits this thread's CPU set.
          cpu_set_t mine, one;
          ::sched_getaffinity(0, sizeof mine, &mine);
          CPU_ZERO(&one);
          CPU_SET(core, &one);
          ::sched_setaffinity(0, sizeof one, &one);
          load[i] = std::make_unique<child_process>(std::vector<std::string>{
              bin_path("loadtest"), "--url",
              "http://127.0.0.1:" + std::to_string(chains[i].gateway.port) + "/api/items", "--connections",
              std::to_string(settings.connections), "--duration", settings.duration, "--warmup", "0s", "--header",
              "X-API-Key: " + std::string(perf_api_key), "--expect-status", "200", "--quiet", "--json",
              dir.file("run" + std::to_string(i) + ".json")});
          ::sched_setaffinity(0, sizeof mine, &mine);
        }
        for (int i = 0; i < 2; ++i) {
          const auto status = load[i]->wait_exit(120s);
          const std::string text = read_file_text(dir.file("run" + std::to_string(i) + ".json"));
          const auto report = json::parse(text);
          const double requests = report ? number_at(report.value(), {"requests"}) : not_measured;
          if (status != 0 || !report || !(requests > 0)) {
            runs[i].problem = chains[i].system->label + ", round " + std::to_string(round) +
                              ": loadtest failed or saw errors: " + (load[i]->out() + load[i]->err()).substr(0, 400);
            continue;
          }
          runs[i].requests = requests;
          runs[i].rps = number_at(report.value(), {"rps"});
          runs[i].gateway_ns = cpu_ns(chains[i].gateway.proc->pid()) - before_gw[i];
          runs[i].chain_ns = cpu_ns(chains[i].gateway.proc->pid()) + cpu_ns(chains[i].backend.proc->pid()) -
                             before_chain[i] + number_at(report.value(), {"loadtest_cpu_total_s"}) * 1e9;
        }
        for (int i = 0; i < 2; ++i) {
          if (!runs[i].problem.empty()) problems.push_back(runs[i].problem);
          const bool ok = runs[i].requests > 0 && runs[i].chain_ns > 0;
          rps[i].push_back(ok ? runs[i].rps : not_measured);
          capacity[i].push_back(ok ? runs[i].requests / (runs[i].chain_ns / 1e9) : not_measured);
          cpu[i].push_back(ok ? runs[i].gateway_ns / runs[i].requests / 1000 : not_measured);
        }
        log << "side-by-side " << candidate.label << " round " << round << " (CPU " << core << "): " << base.label
            << " " << number_text(rps[0].back())
            << " req/s, " << number_text(capacity[0].back()) << " per CPU-s, " << number_text(cpu[0].back())
            << " us/req; " << candidate.label << " " << number_text(rps[1].back()) << " req/s, "
            << number_text(capacity[1].back()) << " per CPU-s, " << number_text(cpu[1].back()) << " us/req\n";
        if (!problems.empty()) break;
        capacity_ratios.push_back(capacity[1].back() / capacity[0].back());
        cpu_ratios.push_back(cpu[1].back() / cpu[0].back());
        if (cpu_ratios.size() < settings.min_rounds) continue;
        if (!side_by_side_undecided(stats(capacity_ratios), settings.throughput_limit) &&
            !side_by_side_undecided(stats(cpu_ratios), settings.cpu_limit))
          break;
      }
      if (problems.empty()) {
        const ratio_stats t = stats(capacity_ratios), c = stats(cpu_ratios);
        const auto note = [&](const ratio_stats& st, const std::vector<double>& b, const std::vector<double>& x,
                              const char* unit) {
          char buf[400];
          std::snprintf(buf, sizeof buf,
                        "%.0f %% interval [%.3f, %.3f], %zu rounds; medians %s %s, %s %s %s; req/s %s, %s",
                        settings.confidence * 100, st.low, st.high, st.ratios.size(), base.label.c_str(),
                        number_text(median_of(b)).c_str(), candidate.label.c_str(), number_text(median_of(x)).c_str(),
                        unit, number_text(median_of(rps[0])).c_str(), number_text(median_of(rps[1])).c_str());
          return std::string(buf);
        };
        auto& gates = out[candidate.label];
        gates.push_back({"side-by-side.throughput", "ratio of requests per CPU-second of the chain", t.median, 1.0,
                         settings.throughput_limit, !side_by_side_fails(t, settings.throughput_limit, true),
                         note(t, capacity[0], capacity[1], "per CPU-s"), median_of(capacity[0])});
        gates.push_back({"side-by-side.cpu-per-request", "ratio of gateway CPU per request", c.median, 1.0,
                         settings.cpu_limit, !side_by_side_fails(c, settings.cpu_limit, false),
                         note(c, cpu[0], cpu[1], "us/req"), median_of(cpu[0])});
      }
      for (auto& ch : chains) {
        stop(ch.gateway, 15s);
        ch.backend.proc->signal(SIGTERM);
        ch.backend.proc->wait_exit(10s);
      }
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
    if (!problems.empty()) {
      std::string all;
      for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
      log << "perf gate: problem: " << all << "\n";
      out[candidate.label] = {{"side-by-side.setup", "problems", static_cast<double>(problems.size()), 0, 0, false, all}};
    }
  }
  return out;
}

// --- output ---------------------------------------------------------------------------

std::string format_line(const gate_result& r) {
  std::string s = "gate " + r.name + ": measured " + number_text(r.measured) + ", baseline " + number_text(r.baseline) +
                  ", limit " + number_text(r.limit) + ", " + (r.pass ? "pass" : "FAIL") + " (" + r.unit;
  if (!r.note.empty()) s += "; " + r.note;
  return s + ")";
}

std::string format_markdown(const std::vector<gate_result>& results, const std::string& title) {
  std::size_t failed = 0;
  for (const auto& r : results) failed += r.pass ? 0 : 1;
  std::string md = "### " + title + ": " +
                   (failed == 0 ? std::string("all ") + std::to_string(results.size()) + " gates pass"
                                : std::to_string(failed) + " of " + std::to_string(results.size()) + " gates FAIL") +
                   "\n\n| gate | measured | baseline | limit | unit | result | note |\n|---|---:|---:|---:|---|---|---|\n";
  for (const auto& r : results) {
    std::string note = r.note;
    std::replace(note.begin(), note.end(), '|', '/');
    std::replace(note.begin(), note.end(), '\n', ' ');
    md += "| `" + r.name + "` | " + number_text(r.measured) + " | " + number_text(r.baseline) + " | " +
          number_text(r.limit) + " | " + r.unit + " | " + (r.pass ? "pass" : "**FAIL**") + " | " + note + " |\n";
  }
  return md;
}

std::string format_report_json(const std::vector<gate_result>& results, const std::string& system,
                               const std::string& base) {
  const auto number = [](std::string& out, double v) {
    if (std::isfinite(v)) json::append_number(out, v, 6);
    else out += "null";
  };
  std::string out = "{\n  \"schema_version\": 1,\n  \"system\": ";
  json::append_string(out, system);
  out += ",\n  \"base\": ";
  json::append_string(out, base);
  out += ",\n  \"pass\": ";
  out += all_pass(results) ? "true" : "false";
  out += ",\n  \"gates\": [";
  bool first = true;
  for (const auto& r : results) {
    out += first ? "\n    {\"name\": " : ",\n    {\"name\": ";
    first = false;
    json::append_string(out, r.name);
    out += ", \"unit\": ";
    json::append_string(out, r.unit);
    out += ", \"measured\": ";
    number(out, r.measured);
    out += ", \"baseline\": ";
    number(out, r.baseline);
    out += ", \"limit\": ";
    number(out, r.limit);
    out += ", \"pass\": ";
    out += r.pass ? "true" : "false";
    out += ", \"note\": ";
    json::append_string(out, r.note);
    out += "}";
  }
  out += "\n  ]\n}\n";
  return out;
}

bool gate_failed(const std::vector<gate_result>& results, const std::string& name) {
  for (const auto& r : results) {
    const bool match = !name.empty() && name.back() == '.' ? r.name.rfind(name, 0) == 0 : r.name == name;
    if (match && !r.pass) return true;
  }
  return false;
}

bool all_pass(const std::vector<gate_result>& results) {
  return std::all_of(results.begin(), results.end(), [](const gate_result& r) { return r.pass; });
}

}  // namespace gateway::perf
