#!/usr/bin/env bash
# Instructions (and simulated cache misses) per request, gateway and nginx,
# counted with valgrind's callgrind, because this machine's virtual CPUs have
# no hardware counters.
#
#   loadtest/instructions.sh [options]
#     --connections LIST  comma-separated wrk connection counts (default 100,2000)
#     --systems LIST      gateway,nginx (default both)
#     --warmup S          seconds of load before counting starts (default 20)
#     --window S          seconds counted (default 40)
#     --out DIR           reports and callgrind files (default build/instructions/DATE)
#     --gateway FILE      the gateway binary (default build/bin/gateway)
#     --io-backend NAME   the gateway's --io-backend (default epoll: valgrind
#                         3.19 does not follow io_uring's shared rings, and a
#                         gateway on io_uring under it serves nothing)
#     --ll SIZE,ASSOC,LINE  the simulated last-level cache (default 2097152,16,64:
#                         one core's 2 MiB L2 here; callgrind would otherwise
#                         take the 504 MiB L3 this VM reports, which never
#                         misses and hides what a larger working set costs)
#
# Each system runs alone under `valgrind --tool=callgrind --cache-sim=yes`
# in one process: the gateway with --threads 1 and its compare.sh chain
# (API key, rate limit, access log off), nginx with `master_process off`
# (one worker, upstream keepalive 4096 so that no upstream connection is
# opened or closed under the load, as the gateway's pool does). wrk drives it
# from one address for warmup + window seconds; after the warm-up the
# counters are zeroed (callgrind_control -z) and at the end of the window
# dumped (-d). Requests are the backend's sendmsg calls over the same window
# (perf stat on the syscall tracepoint), so requests in flight at either end
# count as the load was. Prints, per system and connection count: requests,
# instructions (Ir) per request, first-level data read and write misses and
# last-level misses per request; the callgrind files stay in --out for
# callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. "$root/loadtest/nginx_conf.sh"

connections=100,2000
systems=gateway,nginx
warmup=20
window=40
out=""
gateway_bin="$root/build/bin/gateway"
io_backend=epoll
ll=2097152,16,64
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections=$2; shift 2 ;;
    --systems) systems=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --gateway) gateway_bin=$2; shift 2 ;;
    --io-backend) io_backend=$2; shift 2 ;;
    --ll) ll=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "instructions.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
PATH="$PATH:/usr/sbin:/sbin"
for tool in valgrind callgrind_control wrk perf nginx python3; do
  command -v "$tool" >/dev/null || { echo "instructions.sh: $tool is missing" >&2; exit 2; }
done
[ -x "$gateway_bin" ] || { echo "instructions.sh: --gateway $gateway_bin is not an executable" >&2; exit 2; }
[ -x "$root/build/bin/echo_backend" ] || { echo "instructions.sh: build/bin/echo_backend is missing (build first)" >&2; exit 2; }
[ -n "$out" ] || out="build/instructions/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gateway-instructions-XXXXXX")
chmod 755 "$tmp"

started_pids=()
cleanup() {
  local pid
  for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${started_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

wait_for_line() {
  local file=$1 pattern=$2 line
  for _ in $(seq 1 600); do
    line=$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then echo "$line"; return 0; fi
    sleep 0.1
  done
  echo "instructions.sh: timed out waiting for '$pattern' in $file" >&2
  cat "$file" >&2
  return 1
}
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

printf '%-8s %6s %9s %10s %9s %9s %9s\n' system conns requests Ir/req D1mr/req D1mw/req LLm/req
IFS=, read -r -a conn_list <<<"$connections"
IFS=, read -r -a system_list <<<"$systems"
for c in "${conn_list[@]}"; do
  for s in "${system_list[@]}"; do
    run="$s-$c"
    "$root/build/bin/echo_backend" --listen 127.0.0.1:0 >"$tmp/backend.out" 2>&1 &
    backend_pid=$!
    started_pids+=("$backend_pid")
    backend_port=$(wait_for_line "$tmp/backend.out" 'listening on' | sed 's/.*://')
    vg=(valgrind --tool=callgrind --cache-sim=yes --LL="$ll" --callgrind-out-file="$out/$run.callgrind")
    if [ "$s" = gateway ]; then
      "${vg[@]}" "$gateway_bin" --io-backend "$io_backend" --listen 127.0.0.1:0 --backend "http://127.0.0.1:$backend_port" \
        --api-key loadtest-key --access-log off --rate-limit 100000000/min --threads 1 \
        >"$tmp/sut.out" 2>"$tmp/sut.err" &
      sut_pid=$!
      started_pids+=("$sut_pid")
      port=$(wait_for_line "$tmp/sut.err" 'gateway: listening on' | sed -E 's/.*:([0-9]+) with.*/\1/')
    elif [ "$s" = nginx ]; then
      port=$(free_port)
      write_nginx_conf "$tmp/nginx" "$port" "$backend_port" workers=0 keepalive=4096
      "${vg[@]}" nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" \
        >"$tmp/sut.out" 2>"$tmp/sut.err" &
      sut_pid=$!
      started_pids+=("$sut_pid")
    else
      echo "instructions.sh: unknown system $s" >&2; exit 2
    fi
    url="http://127.0.0.1:$port/api/items"
    for _ in $(seq 1 300); do
      curl -fsS -o /dev/null -H 'X-API-Key: loadtest-key' "$url" 2>/dev/null && break
      sleep 0.2
    done
    curl -fsS -o /dev/null -H 'X-API-Key: loadtest-key' "$url" ||
      { echo "instructions.sh: $s does not answer at $url" >&2; cat "$tmp/sut.err" >&2; exit 1; }
    wrk -t2 -c"$c" -d"$((warmup + window + 5))s" --timeout 30s -H 'X-API-Key: loadtest-key' "$url" \
      >"$out/$run.wrk" 2>&1 &
    wrk_pid=$!
    started_pids+=("$wrk_pid")
    sleep "$warmup"
    callgrind_control -z "$sut_pid" >/dev/null 2>&1
    perf stat -x, -e syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendto -p "$backend_pid" \
      -o "$out/$run.backend" -- sleep "$window"
    callgrind_control -d "$sut_pid" >/dev/null 2>&1
    wait "$wrk_pid" || true
    stop_pid "$sut_pid"
    stop_pid "$backend_pid"
    requests=$(awk -F, '/sys_enter_send/ { n += $1 } END { print n + 0 }' "$out/$run.backend")
    # The dump made by -d is the file with the highest suffix (.1 after zeroing).
    dump=$(ls -t "$out/$run.callgrind".* 2>/dev/null | head -1)
    [ -n "$dump" ] || { echo "instructions.sh: no callgrind dump for $run" >&2; exit 1; }
    mv "$dump" "$out/$run.window.callgrind"
    python3 - "$out/$run.window.callgrind" "$requests" "$s" "$c" <<'PY'
import sys
path, requests, system, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
events, totals = [], None
for line in open(path, errors="replace"):
    if line.startswith("events:"):
        events = line.split()[1:]
    elif line.startswith("summary:") or line.startswith("totals:"):
        totals = [int(x) for x in line.split()[1:]]
if not totals or requests == 0:
    sys.exit("instructions.sh: no totals or no requests for %s-%s" % (system, conns))
v = dict(zip(events, totals))
per = lambda k: v.get(k, 0) / requests
print("%-8s %6s %9d %10.0f %9.1f %9.1f %9.1f" % (system, conns, requests, per("Ir"),
      per("D1mr"), per("D1mw"), per("DLmr") + per("DLmw") + per("ILmr")))
PY
  done
done
