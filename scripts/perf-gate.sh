#!/usr/bin/env bash
# The performance gates in one command (README, "Performance gates"):
#
#   scripts/perf-gate.sh [--base REV] [--inject KIND=N[,KIND=N]] [--update-baseline]
#                        [--gates LIST] [--out DIR]
#
#   --base REV          compare side by side with REV (a commit, branch or tag):
#                       it is checked out in a git worktree (build-perf-base/src,
#                       kept for the next run) and its gateway built there
#                       (build-perf-base/build). Without it the side-by-side
#                       base is this tree's own gateway.
#   --inject KIND=N     gate the hooked build (gateway_perf_inject) with
#                       GATEWAY_INJECT=KIND=N: cpu=N (about N % more CPU work
#                       per request), syscall=N, alloc=N (N more per request).
#                       Its side-by-side base is the same binary with nothing
#                       injected (unless --base). syscall=1 fails the
#                       system-call gates, alloc=1 the allocation gates,
#                       cpu=10 the instruction and side-by-side gates.
#   --update-baseline   rewrite loadtest/baseline.json with the figures
#                       measured now (deterministic gates; shapes, tolerances
#                       and side-by-side settings are kept). For a deliberate
#                       change only: commit the new file with the change and
#                       say why in the message.
#   --gates LIST        a subset of allocations,syscalls,instructions,rss,side-by-side
#   --out DIR           where the report goes (default build/perf-gate):
#                       perf-gate.json and perf-gate.md
#
# Prints one line per gate ("gate NAME: measured X, baseline Y, limit Z,
# pass|FAIL") and a summary; exits 1 when a gate fails, 2 on bad usage. In a
# GitHub job ($GITHUB_STEP_SUMMARY set) the Markdown table is appended to the
# step summary. Installs what it needs from Debian (valgrind, linux-perf,
# strace) and builds what is missing (Release, build/ or $GATEWAY_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

base=""
inject=""
update=""
gates=""
out="build/perf-gate"
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=${2:?--base needs a revision}; shift 2 ;;
    --inject) inject=${2:?--inject needs KIND=N}; shift 2 ;;
    --update-baseline) update=1; shift ;;
    --gates) gates=${2:?--gates needs a list}; shift 2 ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "perf-gate.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$inject" ] && ! [[ "$inject" =~ ^(cpu|syscall|alloc)=[0-9]+(,(cpu|syscall|alloc)=[0-9]+)*$ ]]; then
  echo "perf-gate.sh: --inject takes KIND=N[,KIND=N] with KIND cpu, syscall or alloc, not '$inject'" >&2
  exit 2
fi
if [ -n "$inject" ] && [ -n "$update" ]; then
  echo "perf-gate.sh: --update-baseline with --inject would record an injected build; refused" >&2
  exit 2
fi

# --- tools and builds ------------------------------------------------------------
GATEWAY_DEPS_EXTRA="valgrind linux-perf strace git ${GATEWAY_DEPS_EXTRA:-}" ./scripts/deps.sh
jobs=$(nproc)
build="${GATEWAY_BUILD_DIR:-build}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
if [ "$build_type" != "Release" ]; then
  echo "perf-gate.sh: $build is a '$build_type' build; the baseline is for Release" >&2
  exit 2
fi
cmake --build "$build" -j"$jobs" --target gateway gateway_perf_inject echo_backend loadtest perf_gate perf_alloc_count
bin="$root/$build/bin"

head_bin="$bin/gateway"
head_label="head"
args=()
if [ -n "$inject" ]; then
  head_bin="$bin/gateway_perf_inject"
  head_label="head with $inject"
  args+=(--env "GATEWAY_INJECT=$inject")
fi
if [ -n "$base" ]; then
  rev=$(git rev-parse --verify --quiet "$base^{commit}") || { echo "perf-gate.sh: no commit '$base'" >&2; exit 2; }
  src="$root/build-perf-base/src"
  if [ -d "$src" ]; then
    git -C "$src" checkout -q --detach "$rev"
  else
    git worktree add -q --detach "$src" "$rev"
  fi
  if [ ! -f build-perf-base/build/build.ninja ]; then
    cmake -S "$src" -B build-perf-base/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGATEWAY_BUILD_TESTS=OFF >/dev/null
  fi
  cmake --build build-perf-base/build -j"$jobs" --target gateway
  args+=(--base-gateway "$root/build-perf-base/build/bin/gateway" --base-label "base $(git rev-parse --short "$rev")")
elif [ -n "$inject" ]; then
  args+=(--base-gateway "$bin/gateway_perf_inject" --base-label "head, nothing injected")
else
  args+=(--base-gateway "$bin/gateway" --base-label "head")
fi
[ -n "$update" ] && args+=(--update-baseline)
[ -n "$gates" ] && args+=(--gates "$gates")

# --- the gates -------------------------------------------------------------------------
mkdir -p "$out"
status=0
"$bin/perf_gate" --gateway "$head_bin" --label "$head_label" "${args[@]}" \
  --json "$out/perf-gate.json" --markdown "$out/perf-gate.md" || status=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$out/perf-gate.md" ]; then
  cat "$out/perf-gate.md" >>"$GITHUB_STEP_SUMMARY"
fi
echo "perf-gate.sh: report in $out/perf-gate.json and $out/perf-gate.md" >&2
exit "$status"
