#pragma once
// Samples another process's resident memory (VmRSS in /proc/PID/status) and
// CPU time (utime + stime in /proc/PID/stat). Called from one thread (the load
// generator's main thread); reads two small files per sample, no allocation
// after construction.
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace loadtest {

struct proc_sample {
  std::uint64_t rss_bytes = 0;
  std::uint64_t cpu_ns = 0;  // user + system time since the process started
};

// "VmRSS:\t  12345 kB" in the text of /proc/PID/status, in bytes.
inline std::optional<std::uint64_t> parse_vm_rss_bytes(std::string_view status) noexcept {
  constexpr std::string_view key = "\nVmRSS:";
  const std::size_t at = status.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = status.substr(at + key.size());
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  std::uint64_t kib = 0;
  const auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), kib);
  if (ec != std::errc{} || std::string_view(p, rest.data() + rest.size()).substr(0, 3) != " kB") return std::nullopt;
  return kib * 1024;
}

// utime + stime (fields 14 and 15, in clock ticks) from /proc/PID/stat. The
// command name (field 2) is in parentheses and may itself hold spaces and
// parentheses, so counting starts after the last ')' (proc(5)).
inline std::optional<std::uint64_t> parse_cpu_ticks(std::string_view stat) noexcept {
  const std::size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view rest = stat.substr(close + 1);
  // After ')' come fields 3 (state), 4, ...; utime is field 14: skip 11 fields.
  std::uint64_t total = 0;
  for (int field = 3; field <= 15; ++field) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const std::size_t sp = rest.find(' ');
    const std::string_view word = rest.substr(0, sp);
    if (word.empty()) return std::nullopt;
    if (field >= 14) {
      std::uint64_t v = 0;
      const auto [p, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
      if (ec != std::errc{} || p != word.data() + word.size()) return std::nullopt;
      total += v;
    }
    if (sp == std::string_view::npos) rest = {};
    else rest.remove_prefix(sp);
  }
  return total;
}

class proc_sampler {
 public:
  explicit proc_sampler(int pid);

  // One reading; nullopt once the process is gone (or unreadable).
  std::optional<proc_sample> sample();

  int pid() const noexcept { return pid_; }

 private:
  bool read_file(const std::string& path, std::string& into);

  int pid_;
  std::string status_path_;
  std::string stat_path_;
  std::string buffer_;
  std::uint64_t ns_per_tick_;
};

}  // namespace loadtest
