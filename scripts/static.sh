#!/usr/bin/env bash
# Builds the fully static gateway (GATEWAY_STATIC=ON) into build-static/ and
# checks that it is static and serves /health.
set -euo pipefail
cd "$(dirname "$0")/.."
GATEWAY_DEPS_EXTRA=file ./scripts/deps.sh
if [ ! -f build-static/build.ninja ]; then
  cmake --preset static >/dev/null  # CMakePresets.json: Release, GATEWAY_STATIC=ON, no tests
fi
cmake --build build-static --target gateway -j"$(nproc)"
file build-static/bin/gateway | tee /dev/stderr | grep -q "statically linked"
port=$((20000 + RANDOM % 20000))
./build-static/bin/gateway --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  if body=$(curl -sf "http://127.0.0.1:$port/health"); then
    echo "static gateway: $body"
    echo "$body" | grep -q '"status":"healthy"'
    kill -TERM "$pid"
    wait "$pid"
    trap - EXIT
    exit 0
  fi
  sleep 0.1
done
echo "static gateway did not answer /health" >&2
exit 1
