#pragma once
// Fault injection for the performance gates (README, "Performance gates"):
// proof that each gate catches the regression it is for. Compiled in only
// with the CMake option GATEWAY_PERF_INJECT=ON (or in the test-only binary
// gateway_perf_inject); otherwise on_request() is empty and the binary holds
// neither the hook nor the name of its variable.
//
// GATEWAY_INJECT="cpu=N,syscall=N,alloc=N" (any subset) is read once, at
// start-up (static initialisation), and each proxied request then does, in
// the proxy's handle():
//   cpu=N      N units of spin() (300 iterations each, 0.39 us of CPU on the
//              development machine: 1 to 2 % of a proxied request's CPU
//              there, which is 21 us on a quiet machine and 35 to 60 us
//              under its usual load; docs/perf/gates.md has the figures);
//   syscall=N  N getppid system calls;
//   alloc=N    N heap allocations (operator new of 64 bytes, freed at once).
// Thread: on_request() runs on any worker; it only reads the settings.
#include <cstdint>

namespace gateway::core::perf_inject {

// One unit of cpu=N, in iterations of spin().
inline constexpr unsigned spin_per_cpu_unit = 300;

// `iterations` dependent multiply-adds (4 instructions each), seeded with
// `x`; the result depends on every one, so none is folded away. The perf
// tests time it to size an injection against a request's measured cost.
inline std::uint64_t spin(unsigned iterations, std::uint64_t x) noexcept {
  for (unsigned i = iterations; i > 0; --i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    asm volatile("" : "+r"(x));
  }
  return x;
}

}  // namespace gateway::core::perf_inject

#if defined(GATEWAY_PERF_INJECT) && GATEWAY_PERF_INJECT
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace gateway::core::perf_inject {

struct settings {
  unsigned cpu = 0, syscall = 0, alloc = 0;
};

// The number after `key` ("cpu=") in GATEWAY_INJECT, 0 when absent.
inline unsigned setting(const char* text, const char* key) noexcept {
  const char* at = text != nullptr ? std::strstr(text, key) : nullptr;
  return at != nullptr ? static_cast<unsigned>(std::strtoul(at + std::strlen(key), nullptr, 10)) : 0;
}

inline settings read_settings() noexcept {
  const char* text = std::getenv("GATEWAY_INJECT");
  const settings s{setting(text, "cpu="), setting(text, "syscall="), setting(text, "alloc=")};
  if (text != nullptr)
    std::fprintf(stderr, "gateway: GATEWAY_INJECT cpu=%u syscall=%u alloc=%u per proxied request\n", s.cpu, s.syscall,
                 s.alloc);
  return s;
}

inline const settings injected = read_settings();
inline void* volatile alloc_sink = nullptr;
inline volatile std::uint64_t spin_sink = 0;

inline void on_request() noexcept {
  if (injected.cpu > 0) spin_sink = spin(injected.cpu * spin_per_cpu_unit, spin_sink);
  for (unsigned i = 0; i < injected.syscall; ++i) ::syscall(SYS_getppid);
  for (unsigned i = 0; i < injected.alloc; ++i) {
    alloc_sink = ::operator new(64);
    ::operator delete(alloc_sink);
  }
}

}  // namespace gateway::core::perf_inject
#else
namespace gateway::core::perf_inject {
inline void on_request() noexcept {}
}  // namespace gateway::core::perf_inject
#endif
