#include "gateway/core/memory.hpp"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>

namespace gateway::core {

void configure_process_memory(std::size_t mmap_threshold) noexcept {
#if defined(__GLIBC__) && !defined(GATEWAY_SANITIZED)
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold));
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(mmap_threshold * 2));
#else
  (void)mmap_threshold;
#endif
}

void release_free_memory() noexcept {
#if defined(__GLIBC__) && !defined(GATEWAY_SANITIZED)
  malloc_trim(0);
#endif
}

std::size_t resident_bytes() noexcept {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace gateway::core
