#!/usr/bin/env bash
# Installs the Debian 12 packages the gateway needs to build and test, only
# when some are missing (quick and silent when all are there).
set -euo pipefail

# openssl: the CLI that makes the https-upstream tests' certificates; ca-certificates:
# the system trust store https backends are verified against.
packages=(g++ cmake ninja-build pkg-config libasio-dev node-llhttp zlib1g-dev libssl-dev libhiredis-dev libc-ares-dev liburing-dev catch2
          curl redis-server openssl ca-certificates)
if [ "${GATEWAY_DEPS_EXTRA:-}" != "" ]; then
  # shellcheck disable=SC2206
  packages+=(${GATEWAY_DEPS_EXTRA})
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
