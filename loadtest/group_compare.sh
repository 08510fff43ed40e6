#!/usr/bin/env bash
# Upstream groups side by side: one member against three, and the health and
# retry machinery on and off, interleaved round by round so drift in the
# machine shows up in every system alike. Prints medians across rounds.
#
#   ROUNDS=9 DUR=2s CONN=50 loadtest/group_compare.sh
#
# Starts three echo_backend processes and four gateways (build/bin, Release)
# on loopback: "one" (a route to the first backend), "three" (all three,
# defaults), "three_off" (--eject-after 0 --retry-budget 0), "three_on"
# (defaults and --health-check /healthz --health-interval 1s); runs loadtest
# against each in turn with --pid on the gateway (its CPU per request).
# Everything it started is stopped by PID on exit.
set -u
cd "$(dirname "$0")/.."
BIN=${GATEWAY_BUILD_DIR:-build}/bin
ROUNDS=${ROUNDS:-5}
DUR=${DUR:-3s}
CONN=${CONN:-50}
OUT=${OUT:-build/group-compare}
rm -rf "$OUT"; mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
# Waits (up to 10 s) for "listening on ADDR:PORT" in $1 and prints PORT.
port_in() {
  for _ in $(seq 1 100); do
    p=$(grep -o "listening on 127.0.0.1:[0-9]*" "$1" 2>/dev/null | head -1 | cut -d: -f2)
    if [ -n "$p" ]; then echo "$p"; return 0; fi
    sleep 0.1
  done
  echo "group_compare.sh: no port in $1" >&2; exit 1
}
urls=()
for i in 1 2 3; do
  "$BIN/echo_backend" --listen 127.0.0.1:0 > "$OUT/eb$i.txt" & pids+=($!)
  urls+=("http://127.0.0.1:$(port_in "$OUT/eb$i.txt")")
done
start_gw() {  # NAME ARGS...
  local name=$1; shift
  "$BIN/gateway" --listen 127.0.0.1:0 --threads 2 --access-log off --rate-limit off "$@" 2> "$OUT/$name.err" > /dev/null &
  pids+=($!)
  echo $! > "$OUT/$name.pid"
  port_in "$OUT/$name.err" > "$OUT/$name.port"
}
all="${urls[0]},${urls[1]},${urls[2]}"
start_gw one --route "/svc/=${urls[0]}"
start_gw three --route "/svc/=$all"
start_gw three_off --route "/svc/=$all" --eject-after 0 --retry-budget 0
start_gw three_on --route "/svc/=$all" --health-check /healthz --health-interval 1s
SYSTEMS=${SYSTEMS:-one three three_off three_on}
uptime > "$OUT/uptime-before.txt"
for r in $(seq 1 "$ROUNDS"); do
  for s in $SYSTEMS; do
    "$BIN/loadtest" --url "http://127.0.0.1:$(cat "$OUT/$s.port")/svc/x" --connections "$CONN" --duration "$DUR" \
      --warmup 1s --quiet --pid "$(cat "$OUT/$s.pid")" --settle-timeout 1s --json "$OUT/$s.$r.json" > /dev/null 2>&1
  done
done
uptime > "$OUT/uptime-after.txt"
# shellcheck disable=SC2086
/usr/bin/python3 - "$OUT" $SYSTEMS <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
for s in sys.argv[2:]:
    rps, p99, cpu, err = [], [], [], 0
    for f in sorted(glob.glob(f"{out}/{s}.*.json")):
        d = json.load(open(f))
        rps.append(d["rps"])
        p99.append(d["latency_ms"]["p99"])
        t = d.get("target") or {}
        if t.get("cpu_us_per_request") is not None:
            cpu.append(t["cpu_us_per_request"])
        e = d["errors"]
        err += e["total"] if isinstance(e, dict) else e
    med = lambda x: statistics.median(x) if x else float("nan")
    print(f"{s:10s} rps median {med(rps):9.0f} runs {[round(x) for x in rps]}  p99 ms median {med(p99):.2f}  "
          f"gateway cpu us/req median {med(cpu):.1f} runs {[round(x, 1) for x in cpu]}  errors {err}")
PY
cat "$OUT/uptime-before.txt" "$OUT/uptime-after.txt"
