// libperf_alloc_count.so: replacement global allocation functions
// ([replacement.functions]) for a process started with LD_PRELOAD, counting
// into the page described in alloc_counters.hpp. The gateway binary calls
// operator new through the dynamic linker, so the preloaded definitions win
// over libstdc++'s. Every operator new counts one allocation, then takes the
// memory from malloc; every operator delete gives it back with free.
// Before the page is mapped (allocations made by constructors that run
// before this library's), nothing is counted.
#include "tests/perf/gate/alloc_counters.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

namespace {

using gateway::perf::alloc_counters;

alloc_counters* page = nullptr;

// Trace slots: claimed with one fetch_add, filled by backtrace() into static
// storage (glibc's backtrace allocates only on its first call, which the
// constructor makes).
constexpr unsigned max_traces = 64;
constexpr int max_depth = 24;
std::atomic<unsigned> trace_count{0};
void* trace_frames[max_traces][max_depth];
int trace_depth[max_traces];
std::size_t trace_size[max_traces];
// Constant-initialised, so reading it inside operator new never allocates.
thread_local bool tracing = false;

__attribute__((constructor)) void map_counters() {
  const char* path = std::getenv(gateway::perf::alloc_counters_env);
  if (path == nullptr) return;
  const int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  void* p = ::mmap(nullptr, gateway::perf::alloc_counters_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return;
  void* warm[2];
  ::backtrace(warm, 2);  // loads the unwinder now, not inside a traced operator new
  page = static_cast<alloc_counters*>(p);
}

void count(std::size_t n) noexcept {
  alloc_counters* c = page;
  if (c == nullptr) return;
  c->allocations.fetch_add(1, std::memory_order_relaxed);
  if (c->trace_budget.load(std::memory_order_relaxed) == 0 || tracing) return;
  unsigned left = c->trace_budget.load(std::memory_order_relaxed);
  while (left > 0 && !c->trace_budget.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) {
  }
  if (left == 0) return;
  const unsigned slot = trace_count.fetch_add(1, std::memory_order_relaxed);
  if (slot >= max_traces) return;
  tracing = true;
  trace_depth[slot] = ::backtrace(trace_frames[slot], max_depth);
  trace_size[slot] = n;
  tracing = false;
}

void* counted_malloc(std::size_t n) noexcept {
  count(n);
  return std::malloc(n == 0 ? 1 : n);
}

void* counted_aligned(std::size_t n, std::align_val_t a) noexcept {
  count(n);
  const auto align = static_cast<std::size_t>(a);
  // aligned_alloc wants a size that is a multiple of the alignment.
  const std::size_t size = n == 0 ? align : (n + align - 1) / align * align;
  return std::aligned_alloc(align, size);
}

void counted_free(void* p) noexcept {
  if (p == nullptr) return;
  if (alloc_counters* c = page) c->deallocations.fetch_add(1, std::memory_order_relaxed);
  std::free(p);
}

// "function" for `offset` in `file` (addr2line -f -C), or "" when unknown.
std::string addr2line(const char* file, std::ptrdiff_t offset) {
  char cmd[1200];
  std::snprintf(cmd, sizeof cmd, "addr2line -f -C -e '%.1000s' 0x%tx 2>/dev/null", file, offset);
  std::FILE* p = ::popen(cmd, "r");
  if (p == nullptr) return {};
  char buf[1024];
  std::string fn;
  if (std::fgets(buf, sizeof buf, p) != nullptr) fn = buf;
  ::pclose(p);
  while (!fn.empty() && (fn.back() == '\n' || fn.back() == '\r')) fn.pop_back();
  return fn == "??" ? std::string() : fn;
}

// At exit: the recorded stacks, symbolized (demangled exported symbols, else
// addr2line on the binary's full symbol table), one block per allocation.
__attribute__((destructor)) void write_traces() {
  const unsigned n = std::min(trace_count.load(), max_traces);
  const char* path = std::getenv(gateway::perf::alloc_trace_file_env);
  if (n == 0 || path == nullptr) return;
  page = nullptr;  // what follows allocates; none of it is the gateway's
  std::FILE* out = std::fopen(path, "w");
  if (out == nullptr) return;
  for (unsigned i = 0; i < n; ++i) {
    std::fprintf(out, "allocation %u: %zu bytes\n", i + 1, trace_size[i]);
    // The first frames are operator new and its helpers.
    for (int f = 0; f < trace_depth[i]; ++f) {
      Dl_info info{};
      const char* name = nullptr;
      char* demangled = nullptr;
      if (::dladdr(trace_frames[i][f], &info) != 0 && info.dli_sname != nullptr) {
        int status = 0;
        demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
        name = status == 0 ? demangled : info.dli_sname;
      }
      std::string resolved;
      if (name == nullptr && info.dli_fname != nullptr) {
        // Not an exported symbol (coroutine bodies are local).
        resolved = addr2line(info.dli_fname, static_cast<char*>(trace_frames[i][f]) - static_cast<char*>(info.dli_fbase));
        if (!resolved.empty()) name = resolved.c_str();
      }
      std::fprintf(out, "    %p %.200s\n", trace_frames[i][f], name != nullptr ? name : "?");
      std::free(demangled);
    }
  }
  std::fclose(out);
}

}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = counted_aligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  if (void* p = counted_aligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_aligned(n, a); }

void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }
