# The build's switches, declared in one place (CMakePresets.json combines
# them into the README's build kinds). Each is checked and applied by the file
# of its concern: sanitizers.cmake, static.cmake, warnings.cmake, tests/.
option(GATEWAY_BUILD_TESTS "Build the test suite (tests/)" ON)
option(GATEWAY_FUZZ "Build the libFuzzer targets in tests/fuzz (clang only; see scripts/fuzz.sh)" OFF)
set(GATEWAY_SANITIZE "" CACHE STRING "Sanitizer build: address (ASan+UBSan) or thread (TSan alone)")
set_property(CACHE GATEWAY_SANITIZE PROPERTY STRINGS "" address thread)
option(GATEWAY_STATIC "Link the gateway binary fully statically (glibc included)" OFF)
option(GATEWAY_WERROR "Treat warnings as errors" OFF)
option(GATEWAY_IO_URING "Build on Asio's io_uring backend instead of epoll (needs liburing-dev and a kernel that allows io_uring; see cmake/io_uring.cmake)" OFF)
# Both backends in the gateway binary, chosen at start-up (--io-backend): ON
# by default for Release builds without sanitizers (presets release and
# static), whose binary is the one people run; the second copy of the
# library costs build time the sanitizer, fuzz and debug builds do without.
set(gateway_io_uring_runtime_default OFF)
if(CMAKE_BUILD_TYPE STREQUAL "Release" AND GATEWAY_SANITIZE STREQUAL "" AND NOT GATEWAY_FUZZ AND NOT GATEWAY_IO_URING)
  set(gateway_io_uring_runtime_default ON)
endif()
option(GATEWAY_IO_URING_RUNTIME
  "Compile the gateway library a second time on Asio's io_uring backend so the gateway binary picks epoll or io_uring at start-up (--io-backend; needs liburing-dev; see cmake/io_uring.cmake)"
  ${gateway_io_uring_runtime_default})

# gateway_options: the compile settings every target of the project shares.
add_library(gateway_options INTERFACE)
target_compile_features(gateway_options INTERFACE cxx_std_20)
target_compile_definitions(gateway_options INTERFACE
  ASIO_STANDALONE
  ASIO_NO_DEPRECATED
  # Asio recycles coroutine frames per thread; the default cache of 2 frames is
  # smaller than one request's chain of nested awaitables, so every request
  # would reach malloc. 16 covers the chain with room to spare.
  ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=16
  # Asio picks aligned_alloc or operator new per translation unit, depending
  # on whether a libstdc++ header came before its config; a frame allocated
  # one way and freed the other is undefined (ASan reports the mismatch).
  # One choice for every translation unit.
  ASIO_DISABLE_STD_ALIGNED_ALLOC
  GATEWAY_VERSION="${PROJECT_VERSION}")
target_include_directories(gateway_options INTERFACE "${PROJECT_SOURCE_DIR}")
# Asio 1.22 looks for clang's coroutines in <experimental/coroutine>; clang 14
# with libstdc++ has the standard header, so say so.
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  target_compile_definitions(gateway_options INTERFACE ASIO_HAS_CO_AWAIT ASIO_HAS_STD_COROUTINE)
endif()
find_package(Threads REQUIRED)
target_link_libraries(gateway_options INTERFACE Threads::Threads)

# The perf gates' fault injection (gateway/core/perf_inject.hpp): with ON, the
# proxy does the extra work GATEWAY_INJECT names on every request. Never in a
# build people run; the test suite builds its own hooked binary
# (gateway_perf_inject) and proves the default one has no hook.
option(GATEWAY_PERF_INJECT "Compile the perf-gate fault injection hook into the proxy (GATEWAY_INJECT=cpu=N,syscall=N,alloc=N)" OFF)
if(GATEWAY_PERF_INJECT)
  target_compile_definitions(gateway_options INTERFACE GATEWAY_PERF_INJECT=1)
endif()
