#pragma once
// Process-wide memory policy. glibc's malloc raises its mmap threshold each
// time a large block is freed (up to 32 MiB), after which 10 MiB request
// bodies come from the heap and are never given back to the system. Fixing
// the threshold keeps every large body on its own mapping, returned to the
// kernel the moment the request's arena is reset.
#include <cstddef>

namespace gateway::core {

// Call once at start-up, before threads start. Idempotent.
void configure_process_memory(std::size_t mmap_threshold = 128 * 1024) noexcept;

// Gives freed heap memory back to the system (malloc_trim). Cheap enough
// to call from a background thread every few seconds.
void release_free_memory() noexcept;

// Resident set size of this process in bytes, from /proc/self/statm.
std::size_t resident_bytes() noexcept;

}  // namespace gateway::core
