#!/usr/bin/env bash
# A/B of the two I/O backends (or of any flags, --variant): the one Release gateway binary (build/, which
# holds both, GATEWAY_IO_URING_RUNTIME) started twice, with --io-backend epoll
# and with --io-backend io_uring, both running at once in front of one
# echo_backend, with nginx configured as loadtest/compare.sh
# configures it, loaded by wrk (-t2, one source address) in alternating order
# (epoll, io_uring, nginx) for each connection count, round after round. Per
# run: req/s, p99, errors (socket errors, timeouts, non-2xx) and the server's
# CPU per request from /proc/PID/stat (all its threads; nginx: its workers),
# and the share of the machine's two cores left idle during the run
# (/proc/stat idle + iowait): in a closed loop an idle core means every
# program was asleep with requests in flight. Prints every run and the
# medians across rounds.
#
#   loadtest/uring_ab.sh [--rounds N] [--duration D] [--connections "100 2000"]
#                        [--variant NAME=FLAGS]...
#
# --variant (repeatable) replaces the two gateways with one per variant, the
# same binary started with FLAGS added, e.g. an A/B of the scheduling policy:
#   --variant "normal=--io-backend io_uring" \
#   --variant "batch=--io-backend io_uring --sched-policy batch"
#
# Needs the Release build (cmake --preset release), wrk and nginx.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/loadtest/nginx_conf.sh"
rounds=3 duration=8s conns_list="100 2000"
variants=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) conns_list=$2; shift 2 ;;
    --variant)
      [[ "$2" =~ ^[A-Za-z0-9_]+= && "$2" != nginx=* ]] || { echo "uring_ab.sh: --variant takes NAME=FLAGS (NAME not nginx)" >&2; exit 2; }
      variants+=("$2"); shift 2 ;;
    *) echo "uring_ab.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for f in "$root/build/bin/gateway" "$root/build/bin/echo_backend"; do
  [ -x "$f" ] || { echo "uring_ab.sh: $f missing: cmake --preset release && cmake --build build first" >&2; exit 2; }
done
"$root/build/bin/gateway" --version | grep -q 'io_uring' ||
  { echo "uring_ab.sh: build/bin/gateway has no io_uring backend (configure with -DGATEWAY_IO_URING_RUNTIME=ON)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "uring_ab.sh: wrk missing (scripts/deps.sh with GATEWAY_DEPS_EXTRA=wrk)" >&2; exit 2; }
command -v nginx >/dev/null || { echo "uring_ab.sh: nginx missing" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

wait_port() {  # FILE REGEX -> port
  for _ in $(seq 1 100); do
    if grep -qE "$2" "$1" 2>/dev/null; then grep -oE "$2" "$1" | head -1 | grep -oE '[0-9]+$'; return; fi
    sleep 0.1
  done
  echo "uring_ab.sh: no port in $1" >&2; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$root/build/bin/echo_backend" --listen 127.0.0.1:0 >"$tmp/backend.out" 2>&1 &
pids+=($!)
backend_port=$(wait_port "$tmp/backend.out" 'listening on [0-9.]+:[0-9]+')

[ ${#variants[@]} -gt 0 ] || variants=("epoll=--io-backend epoll" "uring=--io-backend io_uring")
declare -A pid_of port_of
names=()
for v in "${variants[@]}"; do
  b=${v%%=*}
  read -r -a extra <<<"${v#*=}"
  names+=("$b")
  "$root/build/bin/gateway" "${extra[@]}" --listen 127.0.0.1:0 --backend "http://127.0.0.1:$backend_port" --api-key loadtest-key \
    --access-log off --rate-limit 100000000/min >"$tmp/$b.out" 2>"$tmp/$b.err" &
  pid_of[$b]=$!; pids+=($!)
  port_of[$b]=$(wait_port "$tmp/$b.err" 'listening on [0-9.]+:[0-9]+')
done

nginx_port=$(free_port)
write_nginx_conf "$tmp/nginx" "$nginx_port" "$backend_port"
nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx/out" 2>&1 &
pid_of[nginx]=$!; pids+=($!); port_of[nginx]=$nginx_port
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$nginx_port/api/x" >/dev/null && break; sleep 0.1; done

# CPU ticks (utime + stime) of a process and its children (nginx's workers).
ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)
# Idle + iowait ticks and all ticks of the whole machine (/proc/stat's cpu line).
machine() { awk '/^cpu /{t=0; for (i=2;i<=NF;i++) t+=$i; print $5+$6, t; exit}' /proc/stat; }

results="$tmp/results"
: >"$results"
printf '%-6s %-6s %-6s %10s %10s %10s %8s %7s\n' round conns system req/s p99_ms cpu_us/req errors idle%
for r in $(seq 1 "$rounds"); do
  for c in $conns_list; do
    for s in "${names[@]}" nginx; do
      url="http://127.0.0.1:${port_of[$s]}/api/items"
      wrk -t2 -c"$c" -d1s -H 'X-API-Key: loadtest-key' "$url" >/dev/null 2>&1 || true  # warm-up
      t0=$(ticks "${pid_of[$s]}")
      read -r i0 a0 < <(machine)
      out=$(wrk -t2 -c"$c" -d"$duration" --timeout 2s --latency -H 'X-API-Key: loadtest-key' "$url")
      t1=$(ticks "${pid_of[$s]}")
      read -r i1 a1 < <(machine)
      idle=$(awk -v i="$((i1 - i0))" -v a="$((a1 - a0))" 'BEGIN{printf "%.1f", a ? 100*i/a : 0}')
      line=$(python3 - "$out" "$((t1 - t0))" "$hz" <<'PY'
import re, sys
out, dt, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def unit_ms(v, u): return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
m = re.search(r"Requests/sec:\s+([\d.]+)", out); rps = float(m.group(1))
m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out); n = int(m.group(1))
p = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out); p99 = unit_ms(p.group(1), p.group(2)) if p else float("nan")
err = 0
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
if m: err += sum(int(x) for x in m.groups())
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if m: err += int(m.group(1))
cpu = dt / hz * 1e6 / n if n else float("nan")
print(f"{rps:.0f} {p99:.2f} {cpu:.2f} {err}")
PY
)
      read -r rps p99 cpu err <<<"$line"
      printf '%-6s %-6s %-6s %10s %10s %10s %8s %7s\n' "$r" "$c" "$s" "$rps" "$p99" "$cpu" "$err" "$idle"
      echo "$c $s $rps $p99 $cpu $err $idle" >>"$results"
    done
  done
done
echo
echo "medians of $rounds rounds (wrk -t2 -d$duration, one source address):"
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"| connections | system | req/s | p99 ms | CPU us/req | machine idle % | errors (all rounds) |")
print(f"|---|---|---|---|---|---|---|")
for c in dict.fromkeys(r[0] for r in rows):
    for s in dict.fromkeys(r[1] for r in rows):
        rr = [r for r in rows if r[0] == c and r[1] == s]
        med = lambda i: statistics.median(float(r[i]) for r in rr)
        name = {"epoll": "gateway, epoll", "uring": "gateway, io_uring", "nginx": "nginx"}.get(s, "gateway, " + s)
        print(f"| {int(c):,} | {name} | {med(2):,.0f} | {med(3):.2f} | {med(4):.2f} | {med(6):.1f} | {sum(int(r[5]) for r in rr)} |")
PY
