#!/usr/bin/env bash
# Installs what is missing, builds the gateway and its tests, and runs the
# whole suite through ctest. Exits non-zero on any failure.
#   GATEWAY_SANITIZE=address|thread  build and test with sanitizers (own build folder)
#   GATEWAY_IO_URING=1               the io_uring build (build-uring/, Asio's io_uring backend):
#                                    the suite without the perf and soak labels, whose
#                                    figures and budgets are the epoll build's
#   GATEWAY_IO_BACKEND=epoll|io_uring|auto
#                                    every gateway binary the tests start runs with
#                                    --io-backend VALUE (tests/support/child_process.cpp;
#                                    the Release binary has both backends, default auto);
#                                    tests that run the server inside the test process use
#                                    the build's library, epoll here (GATEWAY_IO_URING=1
#                                    runs those on io_uring)
#   CTEST_ARGS="-L unit"             pass extra arguments to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
# The build folders and settings are CMakePresets.json's: release (build/),
# asan (build-address/), tsan (build-thread/, clang), release-uring (build-uring/).
san="${GATEWAY_SANITIZE:-}"
extra=""
labels=()
if [ -n "${GATEWAY_IO_URING:-}" ] && [ "${GATEWAY_IO_URING}" != 0 ]; then
  [ -n "$san" ] && { echo "test.sh: GATEWAY_IO_URING=1 has no sanitizer build; unset GATEWAY_SANITIZE" >&2; exit 2; }
  san=uring
fi
case "${GATEWAY_IO_BACKEND:-}" in
  ""|auto|epoll|io_uring) ;;
  *) echo "test.sh: GATEWAY_IO_BACKEND must be empty, auto, epoll or io_uring, not '${GATEWAY_IO_BACKEND}'" >&2; exit 2 ;;
esac
if [ "$san" = uring ] && [ "${GATEWAY_IO_BACKEND:-}" = epoll ]; then
  echo "test.sh: GATEWAY_IO_URING=1 builds io_uring only; GATEWAY_IO_BACKEND=epoll cannot run there" >&2; exit 2
fi
case "$san" in
  "") preset=release build=build ;;
  uring) preset=release-uring build=build-uring labels=(-LE 'perf|soak') ;;
  address) preset=asan build=build-address ;;
  thread) preset=tsan build=build-thread extra=clang ;;
  *) echo "test.sh: GATEWAY_SANITIZE must be empty, address or thread, not '$san'" >&2; exit 2 ;;
esac
# prometheus: its promtool checks the /metrics exposition format in a test;
# haproxy: the PROXY protocol test runs the gateway behind it (each test
# fails without its tool, as the JSONTestSuite cases fail without
# ../shared/testdata/JSONTestSuite).
GATEWAY_DEPS_EXTRA="prometheus haproxy $extra ${GATEWAY_DEPS_EXTRA:-}" ./scripts/deps.sh
if [ ! -d ../shared/testdata/JSONTestSuite/test_parsing ]; then
  echo "test.sh: ../shared/testdata/JSONTestSuite is missing, its test will fail:" \
       "git clone https://github.com/nst/JSONTestSuite ../shared/testdata/JSONTestSuite" >&2
fi

if [ ! -f "$build/build.ninja" ]; then
  cmake --preset "$preset" >/dev/null
fi
cmake --build "$build" -j"$(nproc)"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
# shellcheck disable=SC2086
ctest --test-dir "$build" --output-on-failure --timeout 900 ${labels[@]+"${labels[@]}"} ${CTEST_ARGS:-}
