#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang, ASan and UBSan in
# build-fuzz, then runs each for a bounded time. Exits non-zero if any target
# finds something (crash, sanitizer report, leak, timeout, out-of-memory or a
# broken invariant).
#   scripts/fuzz.sh [seconds-per-target] [target...]   defaults: 60, all targets
#   GATEWAY_FUZZ_JOBS=2      run two targets at a time (default 1)
#   GATEWAY_FUZZ_ARGS="..."  extra libFuzzer flags, e.g. "-max_len=65536"
# Each target starts from a writable copy of its seed corpus
# (build-fuzz/fuzz/<target>/corpus, where new inputs are kept between runs)
# plus tests/fuzz/regressions/<target>/; findings go to
# build-fuzz/fuzz/<target>/artifacts/, the output to build-fuzz/fuzz/<target>/log.
# Reproduce one with: build-fuzz/bin/<target> <artifact file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
[ $# -gt 0 ] && shift
all_targets=(head_fuzz chunked_fuzz json_fuzz gzip_fuzz response_head_fuzz proxy_header_fuzz)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
jobs="${GATEWAY_FUZZ_JOBS:-1}"
build="build-fuzz"

if ! grep -q "tests/fuzz" CMakeLists.txt; then
  echo "fuzz: the top-level CMakeLists.txt does not add tests/fuzz (if(GATEWAY_FUZZ) add_subdirectory(tests/fuzz) endif())" >&2
  exit 2
fi

GATEWAY_DEPS_EXTRA="clang libclang-rt-14-dev ${GATEWAY_DEPS_EXTRA:-}" ./scripts/deps.sh

if [ ! -f "$build/build.ninja" ]; then
  cmake --preset fuzz >/dev/null  # CMakePresets.json: clang, ASan + UBSan, GATEWAY_FUZZ=ON
fi
cmake --build "$build" -j"${GATEWAY_BUILD_JOBS:-2}" --target "${targets[@]}"

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# Runs one target; its exit status is libFuzzer's (0: nothing found).
run_one() {
  local t="$1" work="$build/fuzz/$1"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp -n "tests/fuzz/corpus/$t/"* "$work/corpus/" 2>/dev/null || true
  local inputs=("$work/corpus")
  [ -d "tests/fuzz/regressions/$t" ] && inputs+=("tests/fuzz/regressions/$t")
  # shellcheck disable=SC2086
  "$build/bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" ${GATEWAY_FUZZ_ARGS:-} "${inputs[@]}" >"$work/log" 2>&1
}

summary() {
  local t="$1" rc="$2" log="$build/fuzz/$1/log"
  local execs time
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
  time=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | awk '{print $5}' || true)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz: $t: ok, ${execs:-?} executions in ${time:-?} s"
  else
    echo "fuzz: $t: FOUND SOMETHING (exit $rc) after ${execs:-?} executions; see $log and $build/fuzz/$t/artifacts/"
    grep -E 'invariant broken|ERROR: |SUMMARY: ' "$log" | head -5 || true
  fi
}

failed=0
i=0
while [ $i -lt ${#targets[@]} ]; do
  batch=("${targets[@]:$i:$jobs}")
  pids=()
  for t in "${batch[@]}"; do
    run_one "$t" &
    pids+=($!)
  done
  for k in "${!batch[@]}"; do
    rc=0
    wait "${pids[$k]}" || rc=$?
    summary "${batch[$k]}" "$rc"
    [ "$rc" -eq 0 ] || failed=1
  done
  i=$((i + jobs))
done
exit $failed
