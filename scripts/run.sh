#!/usr/bin/env bash
# Installs what is missing, builds Release, and runs the gateway on
# 127.0.0.1:8080 (extra arguments are passed to the gateway, e.g.
# --backend http://127.0.0.1:3000). Without --backend, /api/ is served by an
# embedded echo backend.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
if [ ! -f build-release/build.ninja ]; then
  cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DGATEWAY_BUILD_TESTS=OFF >/dev/null
fi
cmake --build build-release --target gateway -j"$(nproc)" >/dev/null
if [ $# -eq 0 ]; then
  # The demo: an API key so the printed /api/ curl line works out of the box.
  set -- --api-key dev-key
fi
exec ./build-release/bin/gateway "$@"
