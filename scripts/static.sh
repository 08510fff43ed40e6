#!/usr/bin/env bash
# Builds the fully static gateway (GATEWAY_STATIC=ON) into build-static/ and
# checks that it is static, serves /health, and speaks TLS to an https
# backend (OpenSSL linked in): verified with --upstream-ca, refused (502)
# without it.
set -euo pipefail
cd "$(dirname "$0")/.."
GATEWAY_DEPS_EXTRA=file ./scripts/deps.sh
if [ ! -f build-static/build.ninja ]; then
  cmake --preset static >/dev/null  # CMakePresets.json: Release, GATEWAY_STATIC=ON, no tests
fi
cmake --build build-static --target gateway -j"$(nproc)"
file build-static/bin/gateway | tee /dev/stderr | grep -q "statically linked"

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Waits until `curl -s -o /dev/null -w %{http_code} URL` prints CODE (5 s at most).
expect_status() {
  local url=$1 code=$2 got=""
  for _ in $(seq 1 50); do
    got=$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)
    if [ "$got" = "$code" ]; then return 0; fi
    sleep 0.1
  done
  echo "static gateway: $url answered '$got', expected $code" >&2
  return 1
}

port=$((20000 + RANDOM % 20000))
./build-static/bin/gateway --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
pids+=("$pid")
expect_status "http://127.0.0.1:$port/health" 200
body=$(curl -sf "http://127.0.0.1:$port/health")
echo "static gateway: $body"
echo "$body" | grep -q '"status":"healthy"'
kill -TERM "$pid"
wait "$pid"

# An https backend: openssl s_server with a certificate for 127.0.0.1 from a
# CA made here (nothing committed).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
  -days 1 -subj /CN=static-check-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/srv.key" -out "$tmp/srv.csr" \
  -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/srv.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -out "$tmp/srv.pem" \
  -days 1 -extfile "$tmp/ext" 2>/dev/null
tls_port=$((20000 + RANDOM % 20000))
openssl s_server -accept "127.0.0.1:$tls_port" -cert "$tmp/srv.pem" -key "$tmp/srv.key" -www -quiet \
  >/dev/null 2>&1 </dev/null &
pids+=("$!")
# ca: --upstream-ca; store: the CA as the system trust store (SSL_CERT_FILE,
# which OpenSSL's default verify paths read, as they read /etc/ssl/certs);
# none: an unknown CA.
for verify in ca store none; do
  port=$((20000 + RANDOM % 20000))
  args=(--listen "127.0.0.1:$port" --rate-limit off --route "/tls/=https://127.0.0.1:$tls_port")
  envs=()
  if [ "$verify" = ca ]; then args+=(--upstream-ca "$tmp/ca.pem"); fi
  if [ "$verify" = store ]; then envs+=(SSL_CERT_FILE="$tmp/ca.pem"); fi
  env "${envs[@]}" ./build-static/bin/gateway "${args[@]}" >/dev/null 2>&1 &
  pid=$!
  pids+=("$pid")
  expect_status "http://127.0.0.1:$port/health" 200
  if [ "$verify" != none ]; then
    expect_status "http://127.0.0.1:$port/tls/" 200
    echo "static gateway: https backend verified ($verify)"
  else
    expect_status "http://127.0.0.1:$port/tls/" 502
    echo "static gateway: https backend of an unknown CA refused (502)"
  fi
  kill -TERM "$pid"
  wait "$pid"
done
