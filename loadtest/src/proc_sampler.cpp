#include "loadtest/src/proc_sampler.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace loadtest {

proc_sampler::proc_sampler(int pid)
    : pid_(pid),
      status_path_(std::string("/proc/") + std::to_string(pid) + "/status"),
      stat_path_(std::string("/proc/") + std::to_string(pid) + "/stat") {
  buffer_.reserve(8192);
  const long hz = ::sysconf(_SC_CLK_TCK);
  ns_per_tick_ = hz > 0 ? 1'000'000'000ULL / static_cast<std::uint64_t>(hz) : 10'000'000ULL;
}

bool proc_sampler::read_file(const std::string& path, std::string& into) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  into.resize(into.capacity() > 0 ? into.capacity() : 8192);
  std::size_t used = 0;
  // procfs files are generated on read; read until EOF, growing as needed (bounded).
  for (int round = 0; round < 16; ++round) {
    if (used == into.size()) into.resize(into.size() * 2);
    const ssize_t n = ::read(fd, into.data() + used, into.size() - used);
    if (n < 0) {
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  ::close(fd);
  into.resize(used);
  return used > 0;
}

std::optional<proc_sample> proc_sampler::sample() {
  proc_sample s;
  // A leading newline lets the parser find "\nVmRSS:" even on the first line.
  if (!read_file(status_path_, buffer_)) return std::nullopt;
  buffer_.insert(buffer_.begin(), '\n');
  const auto rss = parse_vm_rss_bytes(buffer_);
  if (!rss) return std::nullopt;  // a zombie has no VmRSS line
  s.rss_bytes = *rss;
  if (!read_file(stat_path_, buffer_)) return std::nullopt;
  const auto ticks = parse_cpu_ticks(buffer_);
  if (!ticks) return std::nullopt;
  s.cpu_ns = *ticks * ns_per_tick_;
  return s;
}

}  // namespace loadtest
