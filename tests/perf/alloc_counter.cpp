// Replacement global allocation functions ([replacement.functions]): every
// form of operator new counts one allocation unless the calling thread is
// excluded, then takes the memory from malloc; every operator delete gives
// it back with free. Linked into perf_tests only (never into a sanitizer
// build: ASan and TSan bring their own operator new).
#include "tests/perf/alloc_counter.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace gateway::perf {

namespace {

std::atomic<std::uint64_t> allocations{0};
std::atomic<std::uint64_t> deallocations{0};
// Constant-initialised, so reading it from inside operator new never
// allocates (no dynamic TLS initialisation).
thread_local bool excluded = false;

// Trace slots: claimed with one fetch_add, filled by backtrace() into static
// storage (glibc's backtrace allocates only on its very first call, which
// trace_next_allocations makes from the excluded test thread).
constexpr unsigned max_traces = 64;
constexpr int max_depth = 24;
std::atomic<unsigned> trace_budget{0};
std::atomic<unsigned> trace_count{0};
void* trace_frames[max_traces][max_depth];
int trace_depth[max_traces];
std::size_t trace_size[max_traces];
thread_local bool tracing = false;

void count(std::size_t n) noexcept {
  if (excluded) return;
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (trace_budget.load(std::memory_order_relaxed) == 0 || tracing) return;
  unsigned left = trace_budget.load(std::memory_order_relaxed);
  while (left > 0 && !trace_budget.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) {
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
  if (!excluded) deallocations.fetch_add(1, std::memory_order_relaxed);
  std::free(p);
}

}  // namespace

std::uint64_t counted_allocations() noexcept { return allocations.load(std::memory_order_relaxed); }
std::uint64_t counted_deallocations() noexcept { return deallocations.load(std::memory_order_relaxed); }
void exclude_this_thread() noexcept { excluded = true; }

void trace_next_allocations(unsigned n) noexcept {
  void* warm[2];
  ::backtrace(warm, 2);  // loads the unwinder now, not inside a traced operator new
  trace_count.store(0);
  trace_budget.store(n > max_traces ? max_traces : n);
}

namespace {

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

}  // namespace

std::string traced_allocations() {
  std::string out;
  const unsigned n = std::min(trace_count.load(), max_traces);
  for (unsigned i = 0; i < n; ++i) {
    char line[512];
    std::snprintf(line, sizeof line, "allocation %u: %zu bytes\n", i + 1, trace_size[i]);
    out += line;
    // The first frames are operator new and its helpers (maybe inlined).
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
        // Not an exported symbol (coroutine bodies are local): ask addr2line,
        // which reads the binary's full symbol table.
        resolved = addr2line(info.dli_fname, static_cast<char*>(trace_frames[i][f]) - static_cast<char*>(info.dli_fbase));
        if (!resolved.empty()) name = resolved.c_str();
      }
      std::snprintf(line, sizeof line, "    %p %.200s\n", trace_frames[i][f], name != nullptr ? name : "?");
      std::free(demangled);
      out += line;
    }
  }
  return out;
}

}  // namespace gateway::perf

using gateway::perf::counted_aligned;
using gateway::perf::counted_free;
using gateway::perf::counted_malloc;

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
