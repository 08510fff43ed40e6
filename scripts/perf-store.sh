#!/usr/bin/env bash
# Side by side: the gateway with its local rate limiter and the gateway with
# --rate-limit-store (a redis-server on this machine), the same proxied load
# (/api/ to echo_backend) in alternating rounds (L R L R ...), at each
# connection count. Prints one line per run and the medians with their
# ratios; `uptime` before and after, since the machine is shared.
#
#   scripts/perf-store.sh [--rounds N] [--duration D] [--connections "100 2000"] [--wrk]
#
# STORE_FLAGS adds flags to the store instance (e.g. "--rate-limit-store-timeout 50ms").
# --wrk also runs wrk (when installed) against both, alternating the same way.
# Everything it starts (echo_backend, redis-server, two gateways) is
# stopped by PID on exit. Needs build/bin/{gateway,loadtest,echo_backend}.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
duration=5s
conns="100 2000"
use_wrk=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --wrk) use_wrk=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf-store.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin=${GATEWAY_BUILD_DIR:-build}/bin
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

backend_port=$(free_port)
"$bin/echo_backend" --listen 127.0.0.1:"$backend_port" >/dev/null 2>&1 & pids+=($!)
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >"$tmp/redis.log" 2>&1 & pids+=($!)
wait_port "$backend_port"; wait_port "$redis_port"
common=(--backend "http://127.0.0.1:$backend_port" --api-key perf-key --access-log off --threads 2
        --rate-limit 1000000000/min)
local_port=$(free_port)
"$bin/gateway" --listen 127.0.0.1:"$local_port" "${common[@]}" >/dev/null 2>"$tmp/local.err" & pids+=($!)
local_pid=$!
store_port=$(free_port)
"$bin/gateway" --listen 127.0.0.1:"$store_port" "${common[@]}" \
  --rate-limit-store "redis://127.0.0.1:$redis_port" ${STORE_FLAGS:-} >/dev/null 2>"$tmp/store.err" & pids+=($!)
store_pid=$!
wait_port "$local_port"; wait_port "$store_port"

echo "uptime before: $(uptime)"
run() {  # name port pid connections -> "rps p99"
  "$bin/loadtest" --url "http://127.0.0.1:$2/api/perf" --header "X-API-Key: perf-key" --connections "$4" \
    --duration "$duration" --warmup 1s --source-ips 16 --quiet --json "$tmp/$1.json" --pid "$3" >/dev/null 2>&1 || true
  /usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f %.3f %d" % (r["rps"], r["latency_ms"]["p99"], r.get("errors", {}).get("total", 0) if isinstance(r.get("errors"), dict) else r.get("errors", 0)))' "$tmp/$1.json"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for c in $conns; do
  : >"$tmp/l.rps"; : >"$tmp/r.rps"; : >"$tmp/l.p99"; : >"$tmp/r.p99"
  for i in $(seq "$rounds"); do
    read -r rps p99 errs < <(run local "$local_port" "$local_pid" "$c")
    echo "c=$c round $i local: $rps req/s p99 $p99 ms errors $errs"
    echo "$rps" >>"$tmp/l.rps"; echo "$p99" >>"$tmp/l.p99"
    read -r rps p99 errs < <(run store "$store_port" "$store_pid" "$c")
    echo "c=$c round $i redis: $rps req/s p99 $p99 ms errors $errs"
    echo "$rps" >>"$tmp/r.rps"; echo "$p99" >>"$tmp/r.p99"
  done
  lr=$(median <"$tmp/l.rps"); rr=$(median <"$tmp/r.rps"); lp=$(median <"$tmp/l.p99"); rp=$(median <"$tmp/r.p99")
  echo "c=$c median local $lr req/s p99 $lp ms | redis $rr req/s p99 $rp ms | throughput ratio $(awk -v a="$rr" -v b="$lr" 'BEGIN{printf "%.2f", a/b}') p99 delta $(awk -v a="$rp" -v b="$lp" 'BEGIN{printf "%+.3f", a-b}') ms"
  echo "c=$c store counters so far: $(curl -s "http://127.0.0.1:$store_port/metrics?format=prometheus" -H "X-API-Key: perf-key" | grep -E '^gateway_rate_limit_store_(checks|timeouts|fallbacks|errors)' | sed 's/gateway_rate_limit_store_//; s/_total//' | tr '\n' ' ')"
  if [ "$use_wrk" = 1 ] && command -v wrk >/dev/null; then
    for i in $(seq "$rounds"); do
      for side in local store; do
        port=$local_port; [ "$side" = store ] && port=$store_port
        out=$(wrk -t1 -c"$c" -d"$duration" --latency -H "X-API-Key: perf-key" "http://127.0.0.1:$port/api/perf" 2>&1 || true)
        echo "c=$c round $i wrk $side: $(echo "$out" | awk '/Requests\/sec/ {print $2 " req/s"}') p99 $(echo "$out" | awk '$1=="99%" {print $2}')"
      done
    done
  fi
done
echo "uptime after: $(uptime)"
