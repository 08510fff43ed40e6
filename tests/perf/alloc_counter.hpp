#pragma once
// Counts heap allocations made through the global operator new (every form:
// plain, array, nothrow, aligned) in the perf test binary, which replaces the
// global operator new and delete with counting versions (alloc_counter.cpp).
// Allocations made with malloc directly (zlib, OpenSSL, llhttp, the arena if
// it maps its own blocks) are not counted.
//
// Threads: a test marks its own threads (the main test thread, the load
// generator's and the in-process backend's threads) with
// exclude_this_thread(), so the counters hold exactly what the gateway's
// threads allocated. Counters are relaxed atomics: read them while the
// gateway is quiescent (between two phases of a test) for exact figures.
#include <cstdint>
#include <string>

namespace gateway::perf {

// Allocations / deallocations counted since the process started.
std::uint64_t counted_allocations() noexcept;
std::uint64_t counted_deallocations() noexcept;

// From now on, the calling thread's allocations are not counted.
void exclude_this_thread() noexcept;

// Diagnostics for a failing gate: records the call stacks of the next `n`
// counted allocations (at most 64), without allocating while recording.
void trace_next_allocations(unsigned n) noexcept;
// The recorded stacks, symbolized (demangled where the binary exports its
// symbols), one block per allocation with its size. Call once the traced
// allocations have happened; it allocates, so call it from an excluded thread.
std::string traced_allocations();

}  // namespace gateway::perf
