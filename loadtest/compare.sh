#!/usr/bin/env bash
# Side-by-side: the same load against the backend alone, nginx, HAProxy and
# the gateway (full middleware chain), interleaved round by round
# (A B C D A B C D ...) so drift in the machine shows up in every system
# alike. Prints one table (medians across rounds) and writes an SVG of the
# latency percentile curves.
#
#   loadtest/compare.sh [options]
#     --connections N   client connections (default 2000)
#     --duration D      measured time per run (default 10s)
#     --warmup D        unmeasured load before each run (default 2s)
#     --rounds N        rounds of A B C D (default 3, at least 2)
#     --rate N          open loop at N req/s (default: closed loop)
#     --out DIR         where reports, samples and the chart go
#                       (default build/compare/YYYYmmdd-HHMMSS)
#     --chart FILE      the SVG (default DIR/latency.svg; one per client:
#                       latency-wrk.svg beside it for wrk)
#     --systems LIST    comma-separated subset of direct,forwarder,nginx,haproxy,
#                       gateway (default all; with --tls nginx,haproxy,gateway).
#                       forwarder is loadtest's tcp_forwarder: bytes copied
#                       between each client connection and a backend
#                       connection of its own, no HTTP parsing, nothing added:
#                       the floor of any proxy's CPU per request on the load
#     --clients LIST    load generators, each run against every system in
#                       every round: loadtest (--source-ips 250, one
#                       coroutine per connection) and wrk (-t2, one source
#                       address, 2 s request timeout: its timeouts count as
#                       errors). Default loadtest,wrk; wrk is installed
#                       from Debian when missing.
#     --results FILE    also append the tables, as Markdown under a dated
#                       heading, to FILE (e.g. docs/perf/results.md)
#     --tls             clients speak HTTPS to nginx, HAProxy and the gateway
#                       (a self-signed P-256 certificate made for the run;
#                       TLS 1.2 and 1.3, session resumption on in all three;
#                       the backend stays plain HTTP). Keep-alive requests
#                       are measured with wrk (loadtest has no TLS); then,
#                       per round and system, new TLS connections per second
#                       with `openssl s_time` for --duration, full handshakes
#                       (-new) and resumed ones (-reuse), each fetching
#                       /health, with the server's CPU per connection; the
#                       same full handshakes again with --tls-clients
#                       s_time processes at once; then RSS per idle TLS
#                       connection (2 x 1,000 connections held open after
#                       one request each, see --idle).
#                       One s_time client does one handshake after another
#                       and waits through each step, so its rate measures a
#                       connection's latency on this machine (client and
#                       server share the cores: the client's own CPU per
#                       handshake is about twice a server's); the parallel
#                       clients keep the server busy and measure capacity:
#                       the rate at saturation and the server's CPU per
#                       connection.
#     --tls-clients N   parallel s_time clients for the capacity row of
#                       --tls (default 4, 1-64; 0 skips it)
#     --gateway-flags F more flags for the gateway, split on spaces (e.g.
#                       "--sched-policy batch"); the tables name the gateway
#                       "gateway F"
#     --idle N          RSS per idle connection: N connections (one source
#                       address) each sending one /health request, held 4 s,
#                       then N more the same way, for every system but the
#                       backend (default 0: skipped; with --tls 1000, over
#                       TLS); the figure is the second N's growth divided by
#                       N, which leaves out what the first connections touch
#                       once (thread heaps, per-thread TLS state).
#                       Measured twice:
#                       before any load, in a fresh process of each system
#                       started for it (same configuration, own port; stopped
#                       after it), and after the runs, in the measured
#                       process. The two differ because a process that kept
#                       the heap the load freed (nginx keeps it; the gateway
#                       gives it back) places the new connections in it and
#                       grows by less than their live memory: the fresh
#                       figure compares what a connection costs, the other
#                       what a loaded process grows by. The RSS totals of
#                       both are printed under the table.
#
# What it does: installs nginx and HAProxy from Debian when missing
# (scripts/deps.sh), builds the Release binaries when missing (build/, or
# $GATEWAY_BUILD_DIR), starts echo_backend (1 thread, "ok" bodies), nginx
# (2 workers, upstream keep-alive, access_log off), HAProxy (nbthread 2,
# http-reuse always, no log) and the gateway (--access-log off, auth with an
# API key, rate limiter on with a limit no run reaches, its default upstream
# pool) on loopback ports
# with configs in a temp folder, and samples each system's CPU and RSS every
# 100 ms, summed over its processes (nginx: the master and its workers),
# and the whole machine's busy CPU beside it, so each table also shows what
# the rest of the machine (client, backend) spent per request.
# Everything it started is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. "$root/loadtest/nginx_conf.sh"

connections=2000
duration=10s
warmup=2s
rounds=3
rate=""
clients=""
results=""
tls=""
tls_clients=4
idle=""
out=""
chart=""
systems=""
gateway_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --chart) chart=$2; shift 2 ;;
    --systems) systems=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --tls) tls=1; shift ;;
    --tls-clients) tls_clients=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --gateway-flags) read -r -a gateway_flags <<<"$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$idle" ] && ! [[ "$idle" =~ ^[0-9]+$ ]]; then
  echo "compare.sh: --idle takes a number of connections" >&2
  exit 2
fi
[ -n "$idle" ] || { [ -n "$tls" ] && idle=1000 || idle=0; }
if ! [[ "$tls_clients" =~ ^[0-9]+$ ]] || [ "$tls_clients" -gt 64 ]; then
  echo "compare.sh: --tls-clients takes a number of s_time clients, 0-64" >&2
  exit 2
fi
if [ "$rounds" -lt 2 ]; then
  echo "compare.sh: --rounds must be at least 2 (interleaving is what shows drift)" >&2
  exit 2
fi
if [ -n "$tls" ]; then
  [ -n "$systems" ] || systems="nginx,haproxy,gateway"
  [ -n "$clients" ] || clients="wrk"
  if [[ ",$systems," == *,direct,* ]] || [[ ",$systems," == *,forwarder,* ]] || [[ ",$clients," == *,loadtest,* ]]; then
    echo "compare.sh: with --tls the systems are nginx, haproxy and gateway and the client is wrk" \
         "(the backend and loadtest speak plain HTTP only)" >&2
    exit 2
  fi
fi
[ -n "$systems" ] || systems="direct,forwarder,nginx,haproxy,gateway"
[ -n "$clients" ] || clients="loadtest,wrk"
IFS=, read -r -a system_list <<<"$systems"
for s in "${system_list[@]}"; do
  case "$s" in direct|forwarder|nginx|haproxy|gateway) ;; *) echo "compare.sh: unknown system $s" >&2; exit 2 ;; esac
done
IFS=, read -r -a client_list <<<"$clients"
for c in "${client_list[@]}"; do
  case "$c" in loadtest|wrk) ;; *) echo "compare.sh: unknown client $c (loadtest or wrk)" >&2; exit 2 ;; esac
done
if [ -n "$rate" ] && [[ ",$clients," == *,wrk,* ]]; then
  echo "compare.sh: wrk has no open loop; with --rate use --clients loadtest" >&2
  exit 2
fi
if [ -n "$results" ]; then
  touch "$results" && results=$(cd "$(dirname "$results")" && pwd)/$(basename "$results")
fi

# --- dependencies and build ------------------------------------------------
PATH="$PATH:/usr/sbin:/sbin"  # where Debian puts nginx and haproxy
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null || ! command -v python3 >/dev/null ||
   ! command -v wrk >/dev/null; then
  GATEWAY_DEPS_EXTRA="nginx-light haproxy python3 wrk" ./scripts/deps.sh
else
  ./scripts/deps.sh  # the build's own packages (quick when all are there)
fi
build="${GATEWAY_BUILD_DIR:-build}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
if [ "$build_type" != "Release" ]; then
  echo "compare.sh: warning: $build is a '$build_type' build; figures are only meaningful for Release" >&2
fi
cmake --build "$build" --target gateway loadtest echo_backend tcp_forwarder -j"$(nproc)" >/dev/null
bin="$root/$build/bin"

[ -n "$out" ] || out="$build/compare/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -n "$chart" ] || chart="$out/latency.svg"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gateway-compare-XXXXXX")
chmod 755 "$tmp"  # nginx workers may run as another user
scheme=http
if [ -n "$tls" ]; then
  scheme=https
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
  chmod 644 "$tmp/key.pem"
  cat "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/haproxy.pem"
fi

# --- process bookkeeping: everything started here is stopped by PID ---------
started_pids=()
sampler_pid=""
cleanup() {
  local pid
  # The sampler of an interrupted run first (its PID is only ever a live child here).
  if [ -n "$sampler_pid" ]; then kill -TERM "$sampler_pid" 2>/dev/null || true; fi
  for pid in "${started_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${started_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until FILE has a line matching PATTERN; prints it.
wait_for_line() {
  local file=$1 pattern=$2 line
  for _ in $(seq 1 200); do
    line=$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then echo "$line"; return 0; fi
    sleep 0.05
  done
  echo "compare.sh: timed out waiting for '$pattern' in $file:" >&2
  cat "$file" >&2
  return 1
}

# Free loopback ports for nginx and HAProxy, and for their fresh instances of
# the idle step (bound and released at once; the gateway and the backend take
# port 0 themselves).
read -r nginx_port haproxy_port nginx_fresh_port haproxy_fresh_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- the backend -------------------------------------------------------------
"$bin/echo_backend" --listen 127.0.0.1:0 >"$tmp/backend.out" 2>&1 &
backend_pid=$!
started_pids+=("$backend_pid")
backend_port=$(wait_for_line "$tmp/backend.out" 'listening on' | sed 's/.*://')

declare -A pid_of url_of
pid_of[direct]=$backend_pid
url_of[direct]="http://127.0.0.1:$backend_port/api/items"

# --- the blind forwarder -------------------------------------------------------
if [[ ",$systems," == *,forwarder,* ]]; then
  "$bin/tcp_forwarder" --backend "127.0.0.1:$backend_port" --threads 2 --io epoll >"$tmp/forwarder.out" 2>&1 &
  pid_of[forwarder]=$!
  started_pids+=("$!")
  url_of[forwarder]="http://127.0.0.1:$(wait_for_line "$tmp/forwarder.out" 'listening on' | sed 's/.*://')/api/items"
fi

# --- nginx -------------------------------------------------------------------
# start_nginx DIR PORT: an nginx with its config in DIR; its PID in started_pid.
start_nginx() {
  local nginx_tls=()
  [ -n "$tls" ] && nginx_tls=(tls_cert="$tmp/cert.pem" tls_key="$tmp/key.pem")
  write_nginx_conf "$1" "$2" "$backend_port" health=1 "${nginx_tls[@]}"
  nginx -p "$1" -e "$1/error.log" -c "$1/nginx.conf" >"$1/out" 2>&1 &
  started_pid=$!
  started_pids+=("$started_pid")
}
if [[ ",$systems," == *,nginx,* ]]; then
  start_nginx "$tmp/nginx" "$nginx_port"
  pid_of[nginx]=$started_pid
  url_of[nginx]="$scheme://127.0.0.1:$nginx_port/api/items"
fi

# --- HAProxy -----------------------------------------------------------------
# start_haproxy CFG PORT: an HAProxy with its config written to CFG; its PID
# in started_pid.
start_haproxy() {
  local fd_limit haproxy_maxconn
  # HAProxy wants about two descriptors per connection (client and server side).
  fd_limit=$(ulimit -n)
  [ "$fd_limit" = unlimited ] && fd_limit=1048576
  haproxy_maxconn=$(( (fd_limit - 200) / 2 ))
  [ "$haproxy_maxconn" -gt 40000 ] && haproxy_maxconn=40000
  cat >"$1" <<EOF
global
  nbthread 2
  maxconn $haproxy_maxconn
defaults
  mode http
  maxconn $haproxy_maxconn
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend clients
  bind 127.0.0.1:$2${tls:+ ssl crt $tmp/haproxy.pem alpn http/1.1}
  http-request return status 200 content-type text/plain string ok if { path /health }
  default_backend echo
backend echo
  http-request replace-path /api(/.*) \1
  server backend 127.0.0.1:$backend_port
EOF
  haproxy -db -f "$1" >"$1.out" 2>&1 &
  started_pid=$!
  started_pids+=("$started_pid")
}
if [[ ",$systems," == *,haproxy,* ]]; then
  start_haproxy "$tmp/haproxy.cfg" "$haproxy_port"
  pid_of[haproxy]=$started_pid
  url_of[haproxy]="$scheme://127.0.0.1:$haproxy_port/api/items"
fi

# --- the gateway ---------------------------------------------------------------
# start_gateway NAME: a gateway on a port of its own choosing, its output in
# $tmp/NAME.out and .err; its PID in started_pid, its port in started_port.
start_gateway() {
  local tls_flags=()
  [ -n "$tls" ] && tls_flags=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem")
  "$bin/gateway" --listen 127.0.0.1:0 --backend "http://127.0.0.1:$backend_port" --api-key loadtest-key \
    "${tls_flags[@]}" "${gateway_flags[@]}" \
    --access-log off --rate-limit 100000000/min \
    >"$tmp/$1.out" 2>"$tmp/$1.err" &
  started_pid=$!
  started_pids+=("$started_pid")
  started_port=$(wait_for_line "$tmp/$1.err" 'gateway: listening on' | sed -E 's/.*:([0-9]+) with.*/\1/')
}
if [[ ",$systems," == *,gateway,* ]]; then
  start_gateway gateway
  pid_of[gateway]=$started_pid
  url_of[gateway]="$scheme://127.0.0.1:$started_port/api/items"
fi

# answers URL: true once URL answers 200 (within 10 s).
answers() {
  for _ in $(seq 1 100); do
    if python3 - "$1" <<'PY' 2>/dev/null
import ssl, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"X-API-Key": "loadtest-key"})
sys.exit(0 if urllib.request.urlopen(req, timeout=2, context=ssl._create_unverified_context()).status == 200 else 1)
PY
    then return 0; fi
    sleep 0.1
  done
  return 1
}

# Every system answers before the runs start.
for s in "${system_list[@]}"; do
  if ! answers "${url_of[$s]}"; then
    echo "compare.sh: $s does not answer 200 at ${url_of[$s]}; its output:" >&2
    case "$s" in
      direct) cat "$tmp/backend.out" >&2 ;;
      forwarder) cat "$tmp/forwarder.out" >&2 ;;
      nginx) cat "$tmp/nginx/out" "$tmp/nginx/error.log" >&2 ;;
      haproxy) cat "$tmp/haproxy.cfg.out" >&2 ;;
      gateway) cat "$tmp/gateway.err" >&2 ;;
    esac
    exit 1
  fi
done

# --- the sampler: CPU and RSS of a process and its children every 100 ms ------
sampler() {
  # exec: the background job's PID is python's own, so kill reaches it.
  exec python3 - "$@" <<'PY'
import os, signal, sys, time
root, out = int(sys.argv[1]), sys.argv[2]
tick = os.sysconf("SC_CLK_TCK")
page = os.sysconf("SC_PAGE_SIZE")
running = True
def stop(*_):
    global running
    running = False
signal.signal(signal.SIGTERM, stop)
def tree():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(kids.get(p, []))
    return pids
pids, last_scan = tree(), time.monotonic()
with open(out, "w") as f:
    while running and os.path.exists("/proc/%d" % root):
        now = time.monotonic()
        if now - last_scan > 1.0:
            pids, last_scan = tree(), now
        cpu = rss = 0
        for p in pids:
            try:
                with open("/proc/%d/stat" % p) as s:
                    fields = s.read().rsplit(")", 1)[1].split()
                cpu += int(fields[11]) + int(fields[12])
                with open("/proc/%d/statm" % p) as s:
                    rss += int(s.read().split()[1]) * page
            except (OSError, IndexError, ValueError):
                pass
        with open("/proc/stat") as s:
            # Busy time of the whole machine: user nice system idle iowait irq softirq steal.
            t = [int(x) for x in s.readline().split()[1:9]]
        busy = t[0] + t[1] + t[2] + t[5] + t[6] + t[7]
        f.write("%.4f %.4f %d %d %.4f\n" % (now, cpu / tick, rss, len(pids), busy / tick))
        f.flush()
        time.sleep(0.1)
PY
}

# Samples SYSTEM's processes into $out/RUN.samples until stop_sampler.
start_sampler() {
  sampler "${pid_of[$1]}" "$out/$2.samples" &
  sampler_pid=$!
  sleep 0.3
}
stop_sampler() {
  kill -TERM "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=""
}

# idle_measure PID PORT N: RSS growth of PID's process tree per connection
# held, each after one /health request (over TLS with --tls): from N to 2N
# connections held, so that one-time costs of the first are left out;
# prints JSON.
idle_measure() {
  python3 - "$1" "$2" "$3" "$scheme" <<'PY'
import json, os, ssl, socket, sys, time
root, port, count, scheme = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
page = os.sysconf("SC_PAGE_SIZE")
def tree_rss():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            with open("/proc/%d/statm" % p) as f:
                total += int(f.read().split()[1]) * page
        except (OSError, ValueError):
            pass
    return total
ctx = ssl._create_unverified_context()
held = []
def open_batch():
    for _ in range(count):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        c = ctx.wrap_socket(raw, server_hostname="localhost") if scheme == "https" else raw
        c.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        held.append(c)
    time.sleep(4)  # idle: past the gateway's shedding (1 s) and its housekeeping trim (every 2 s)
time.sleep(1)
before = tree_rss()
# Two batches of `count`: the first also pays what a process touches once
# (thread heaps, per-thread TLS state), so the figure per
# connection is what the second batch adds.
open_batch()
middle = tree_rss()
open_batch()
after = tree_rss()
print(json.dumps({"connections": len(held), "rss_before": before, "rss_middle": middle, "rss_after": after,
                  "first_per_connection": (middle - before) / max(1, count),
                  "per_connection": (after - middle) / max(1, len(held) - count)}))
for c in held:
    c.close()
PY
}

# stop_started PID: stops a process started here, and forgets it.
stop_started() {
  local pid kept=()
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for pid in "${started_pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  started_pids=("${kept[@]}")
}

# --- RSS per idle connection in fresh processes, before any load ----------------
# The idle step after the runs measures processes that have served the load:
# one that kept the heap it freed (nginx) places new connections in it and
# grows by less than their live memory. So the same measure first runs
# against a fresh instance of each system (same configuration, own port),
# started for it and stopped after it.
if [ "$idle" -gt 0 ]; then
  for s in "${system_list[@]}"; do
    case "$s" in
      direct|forwarder) continue ;;
      nginx) start_nginx "$tmp/nginx-fresh" "$nginx_fresh_port"; fresh_port=$nginx_fresh_port ;;
      haproxy) start_haproxy "$tmp/haproxy-fresh.cfg" "$haproxy_fresh_port"; fresh_port=$haproxy_fresh_port ;;
      gateway) start_gateway gateway-fresh; fresh_port=$started_port ;;
    esac
    fresh_pid=$started_pid
    if answers "$scheme://127.0.0.1:$fresh_port/health"; then
      idle_measure "$fresh_pid" "$fresh_port" "$idle" >"$out/idle-fresh-$s.json" ||
        echo "compare: idle connections against a fresh $s failed" >&2
      echo "compare: fresh $s, RSS per idle connection: $(python3 -c 'import json,sys; print("%.0f B" % json.load(open(sys.argv[1]))["per_connection"])' "$out/idle-fresh-$s.json" 2>/dev/null || echo '?')" >&2
    else
      echo "compare: a fresh $s does not answer on port $fresh_port" >&2
    fi
    stop_started "$fresh_pid"
  done
fi

# --- the runs -------------------------------------------------------------------
load_args=(--connections "$connections" --duration "$duration" --warmup "$warmup" --source-ips 250
           --header "X-API-Key: loadtest-key" --expect-status 200 --quiet --settle-timeout 1s)
[ -n "$rate" ] && load_args+=(--rate "$rate")
mode="closed loop"
[ -n "$rate" ] && mode="open loop at $rate req/s"
echo "compare: $mode, $connections connections, $duration per run after $warmup warm-up, $rounds rounds," \
     "systems ${system_list[*]}, clients ${client_list[*]}; results in $out" >&2
now() { python3 -c 'import time; print("%.4f" % time.monotonic())'; }
for round in $(seq 1 "$rounds"); do
  for client in "${client_list[@]}"; do
    for s in "${system_list[@]}"; do
      run="$client-$s-$round"
      start_sampler "$s" "$run"
      status=0
      if [ "$client" = loadtest ]; then
        # The report's warmup_s says where the measured window starts.
        now >"$out/$run.start"
        "$bin/loadtest" --url "${url_of[$s]}" "${load_args[@]}" --json "$out/$run.json" >"$out/$run.txt" 2>&1 ||
          status=$?
      else
        wrk -t2 -c"$connections" -d"$warmup" -H "X-API-Key: loadtest-key" "${url_of[$s]}" >/dev/null 2>&1 || true
        now >"$out/$run.start"
        WRK_JSON="$out/$run.json" wrk -t2 -c"$connections" -d"$duration" -H "X-API-Key: loadtest-key" \
          -s "$root/loadtest/wrk_report.lua" "${url_of[$s]}" >"$out/$run.txt" 2>&1 || status=$?
      fi
      stop_sampler
      rps=$(python3 -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["rps"])' "$out/$run.json" 2>/dev/null || echo "?")
      echo "compare: round $round $client $s: $rps req/s (exit $status)" >&2
    done
  done
done

# --- TLS: new connections per second, and memory per idle TLS connection ------
if [ -n "$tls" ]; then
  hs_seconds=$(python3 -c 'import re,sys; m=re.fullmatch(r"([0-9.]+)(ms|s|m)?", sys.argv[1]); print(max(1, round(float(m.group(1)) * {"ms": 1e-3, "s": 1, "m": 60, None: 1}[m.group(2)])))' "$duration")
  for round in $(seq 1 "$rounds"); do
    for hs_mode in new reuse; do
      for s in "${system_list[@]}"; do
        run="handshake-$hs_mode-$s-$round"
        port=${url_of[$s]#https://127.0.0.1:}
        port=${port%%/*}
        start_sampler "$s" "$run"
        now >"$out/$run.start"
        timeout $((hs_seconds + 30)) openssl s_time -connect "127.0.0.1:$port" "-$hs_mode" -time "$hs_seconds" \
          -www /health >"$out/$run.txt" 2>&1 || true
        now >"$out/$run.end"
        stop_sampler
        echo "compare: round $round $hs_mode TLS connections $s: $(grep -m1 -o '^[0-9]* connections in [0-9.]*s' "$out/$run.txt" || echo '?')" >&2
      done
    done
    # Capacity: --tls-clients s_time processes doing full handshakes at once.
    [ "$tls_clients" -gt 0 ] || continue
    for s in "${system_list[@]}"; do
      run="handshake-parallel-$s-$round"
      port=${url_of[$s]#https://127.0.0.1:}
      port=${port%%/*}
      start_sampler "$s" "$run"
      now >"$out/$run.start"
      client_pids=()
      for k in $(seq 1 "$tls_clients"); do
        timeout $((hs_seconds + 30)) openssl s_time -connect "127.0.0.1:$port" -new -time "$hs_seconds" \
          -www /health >"$out/$run.$k.txt" 2>&1 &
        client_pids+=($!)
      done
      for pid in "${client_pids[@]}"; do wait "$pid" || true; done
      now >"$out/$run.end"
      stop_sampler
      total=0
      for k in $(seq 1 "$tls_clients"); do
        n=$(grep -m1 -o '^[0-9]* connections in' "$out/$run.$k.txt" | cut -d' ' -f1 || true)
        total=$((total + ${n:-0}))
      done
      echo "$total" >"$out/$run.txt"
      echo "compare: round $round $tls_clients parallel clients, full TLS connections $s: $total" >&2
    done
  done
fi

# --- RSS per idle connection: N connections, one request each, held -------------
if [ "$idle" -gt 0 ]; then
  for s in "${system_list[@]}"; do
    case "$s" in direct|forwarder) continue ;; esac  # no HTTP proxy: the backend, or bytes copied
    port=${url_of[$s]#$scheme://127.0.0.1:}
    port=${port%%/*}
    idle_measure "${pid_of[$s]}" "$port" "$idle" >"$out/idle-$s.json" || echo "compare: idle connections against $s failed" >&2
  done
fi

# --- the table and the chart ----------------------------------------------------------
GATEWAY_FLAGS="${gateway_flags[*]}" TLS_CLIENTS="$tls_clients" IDLE_CONNECTIONS="$idle" SVG_CHART="$root/loadtest/svg_chart.py" python3 - "$out" "$chart" "$warmup" "$duration" "$mode" "$connections" "$rounds" "$clients" "$results" "$tls" "${system_list[@]}" <<'PY'
import datetime, json, os, re, statistics, subprocess, sys
out, chart, warmup, duration, mode, connections, rounds, clients, results, tls = sys.argv[1:11]
systems = sys.argv[11:]
clients = clients.split(",")
rounds = int(rounds)
names = {"direct": "backend alone", "forwarder": "TCP forwarder (floor)", "nginx": "nginx", "haproxy": "HAProxy",
         "gateway": " ".join(["gateway"] + os.environ.get("GATEWAY_FLAGS", "").split())}
client_names = {"loadtest": "loadtest (250 source addresses)", "wrk": "wrk -t2 (one source address)"}

def window_cpu(samples, t0, t1):
    """CPU seconds between t0 and t1, interpolated between samples."""
    def at(t):
        for (ta, ca), (tb, cb) in zip(samples, samples[1:]):
            if ta <= t <= tb:
                return ca + (cb - ca) * ((t - ta) / (tb - ta) if tb > ta else 0)
        return samples[0][1] if t < samples[0][0] else samples[-1][1]
    return at(t1) - at(t0)

def print_table(header, rows):
    """Columns padded to their widest cell: the first left-aligned, the rest right."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths)))
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))

def load_runs(client):
    runs = {}
    for s in systems:
        for r in range(1, rounds + 1):
            base = os.path.join(out, "%s-%s-%d" % (client, s, r))
            try:
                rep = json.load(open(base + ".json"))
            except (OSError, ValueError):
                continue
            start = float(open(base + ".start").read())
            rows = [l.split() for l in open(base + ".samples")]
            samples = [(float(r[0]), float(r[1])) for r in rows]
            machine = [(float(r[0]), float(r[4])) for r in rows]
            peak = max(int(r[2]) for r in rows) if rows else 0
            procs = max(int(r[3]) for r in rows) if rows else 0
            t0 = start + rep["warmup_s"]
            t1 = t0 + rep["duration_s"]
            cpu = window_cpu(samples, t0, t1) if len(samples) > 1 else float("nan")
            busy = window_cpu(machine, t0, t1) if len(machine) > 1 else float("nan")
            reqs = rep["requests"] or 1
            runs.setdefault(s, []).append({
                "rps": rep["rps"], "p50": rep["latency_ms"]["p50"], "p90": rep["latency_ms"]["p90"],
                "p99": rep["latency_ms"]["p99"], "p999": rep["latency_ms"]["p999"], "max": rep["latency_ms"]["max"],
                "errors": rep["errors"]["total"] + rep.get("dropped", 0), "cpu_us": cpu * 1e6 / reqs,
                "cpu_pct": 100 * cpu / rep["duration_s"], "rss": peak, "procs": procs,
                "machine_pct": 100 * busy / rep["duration_s"], "rest_us": (busy - cpu) * 1e6 / reqs,
                "loadtest_cpu_us": rep.get("loadtest_cpu_us_per_request", float("nan"))})
    return runs

hdr = ("system", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "CPU us/req", "CPU %", "rest us/req", "machine CPU %",
       "peak RSS", "errors",
       "req/s/nginx", "CPU/req/nginx", "p99/nginx", "RSS/nginx")
title = "%s%s, %s connections, %s per run (after %s warm-up), medians of %d rounds interleaved" % (
    "HTTPS, " if tls else "", mode, connections, duration, warmup, rounds)
markdown = ["", "### %s: %s" % (datetime.date.today().isoformat(), title), "",
            "`loadtest/compare.sh --connections %s --duration %s --rounds %d%s`%s, one table per client." % (
                connections, duration, rounds, " --tls" if tls else "",
                "" if mode == "closed loop" else " (open loop)")]
summary = {"mode": mode, "connections": int(connections), "duration": duration, "warmup": warmup,
           "rounds": rounds, "clients": {}}
for client in clients:
    runs = load_runs(client)
    if not runs:
        print("compare.sh: no %s report was readable" % client)
        continue
    med = {s: {k: statistics.median(run[k] for run in rs) for k in rs[0]} for s, rs in runs.items()}
    ref = med.get("nginx")
    def ratio(s, k):
        if not ref or not ref[k]:
            return "-"
        return "%.2fx" % (med[s][k] / ref[k])
    rows = []
    for s in systems:
        if s not in med:
            continue
        m = med[s]
        rows.append((names[s], "%.0f" % m["rps"], "%.2f" % m["p50"], "%.2f" % m["p99"], "%.2f" % m["p999"],
                     "%.1f" % m["cpu_us"], "%.0f" % m["cpu_pct"], "%.1f" % m["rest_us"], "%.0f" % m["machine_pct"],
                     "%.1f MiB" % (m["rss"] / 1048576),
                     "%.0f" % m["errors"], ratio(s, "rps"), ratio(s, "cpu_us"), ratio(s, "p99"), ratio(s, "rss")))
    print()
    print("%s; client %s" % (title, client_names[client]))
    print_table(hdr, rows)
    print()
    per_round = ["%-14s %s" % (names[s], "   ".join("%.0f, %.1f" % (r["rps"], r["p99"]) for r in runs[s]))
                 for s in systems if s in runs]
    print("per round (req/s, p99 ms):")
    for l in per_round:
        print("  " + l)
    markdown += ["", "Client: %s." % client_names[client], "", "| " + " | ".join(hdr) + " |",
                 "|" + "---|" * len(hdr)] + ["| " + " | ".join(r) + " |" for r in rows]
    markdown += ["", "Per round (req/s, p99 ms): " + "; ".join(
        "%s %s" % (names[s], ", ".join("%.0f/%.1f" % (r["rps"], r["p99"]) for r in runs[s]))
        for s in systems if s in runs) + "."]
    summary["clients"][client] = {"medians": med, "runs": runs}
    series = []
    for s in systems:
        if s in med:
            m = med[s]
            series.append({"name": names[s],
                           "label": "%.0f req/s, %.0f us CPU/req" % (m["rps"], m["cpu_us"]),
                           "points": [[50, m["p50"]], [90, m["p90"]], [99, m["p99"]], [99.9, m["p999"]]],
                           "max_ms": m["max"]})
    spec = {"title": "Latency percentiles: %s, %s connections, %s" % (mode, connections, client),
            "subtitle": "%s per run, medians of %d interleaved rounds, loopback, echo backend" % (duration, rounds),
            "series": series}
    spec_file = os.path.join(out, "chart-%s.json" % client)
    with open(spec_file, "w") as f:
        json.dump(spec, f, indent=2)
    svg = chart if client == clients[0] else re.sub(r"(\.svg)?$", "-%s.svg" % client, chart, count=1)
    subprocess.run([sys.executable, os.environ["SVG_CHART"], spec_file, svg], check=True)
    print("chart: %s" % svg)

idle_count = int(os.environ.get("IDLE_CONNECTIONS", "0"))
idle = {}
idle_rss = {}  # system -> (RSS before the idle step, RSS with the connections held)
fresh = {}  # the same measure in a fresh process, before any load
fresh_rss = {}
for s in systems:
    try:
        doc = json.load(open(os.path.join(out, "idle-%s.json" % s)))
        idle[s] = doc["per_connection"]
        idle_rss[s] = (doc["rss_before"], doc["rss_after"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        doc = json.load(open(os.path.join(out, "idle-fresh-%s.json" % s)))
        fresh[s] = doc["per_connection"]
        fresh_rss[s] = (doc["rss_before"], doc["rss_after"])
    except (OSError, ValueError, KeyError):
        pass

if tls:
    # New TLS connections (openssl s_time, one client process) and idle ones.
    hs = {}
    for s in systems:
        for m in ("new", "reuse"):
            for r in range(1, rounds + 1):
                base = os.path.join(out, "handshake-%s-%s-%d" % (m, s, r))
                try:
                    txt = open(base + ".txt").read()
                    t0, t1 = float(open(base + ".start").read()), float(open(base + ".end").read())
                    rows = [l.split() for l in open(base + ".samples")]
                except OSError:
                    continue
                found = re.search(r"(\d+) connections in [0-9.]+s", txt)
                if not found or t1 <= t0:
                    continue
                n = int(found.group(1))
                samples = [(float(r[0]), float(r[1])) for r in rows]
                cpu = window_cpu(samples, t0, t1) if len(samples) > 1 else float("nan")
                hs.setdefault((s, m), []).append({"rate": n / (t1 - t0), "cpu_us": cpu * 1e6 / max(1, n)})
        # The capacity runs: the sum of the parallel clients' connections.
        for rnd in range(1, rounds + 1):
            base = os.path.join(out, "handshake-parallel-%s-%d" % (s, rnd))
            try:
                n = int(open(base + ".txt").read().strip())
                t0, t1 = float(open(base + ".start").read()), float(open(base + ".end").read())
                rows = [l.split() for l in open(base + ".samples")]
            except (OSError, ValueError):
                continue
            if n <= 0 or t1 <= t0:
                continue
            samples = [(float(x[0]), float(x[1])) for x in rows]
            cpu = window_cpu(samples, t0, t1) if len(samples) > 1 else float("nan")
            hs.setdefault((s, "parallel"), []).append({"rate": n / (t1 - t0), "cpu_us": cpu * 1e6 / n})
    def med_of(s, m, k):
        runs_ = hs.get((s, m))
        return statistics.median(x[k] for x in runs_) if runs_ else float("nan")
    tls_clients = int(os.environ.get("TLS_CLIENTS", "0"))
    thdr = ("system", "full handshakes/s", "CPU us/full", "resumed/s", "CPU us/resumed",
            "full/s, %d clients" % tls_clients, "CPU us/full, %d clients" % tls_clients,
            "RSS/idle TLS conn, fresh", "RSS/idle TLS conn, after runs",
            "full/s/nginx", "CPU/full/nginx", "resumed/s/nginx", "full/s/nginx, %d clients" % tls_clients,
            "CPU/full/nginx, %d clients" % tls_clients, "idle RSS/nginx, fresh", "idle RSS/nginx, after runs")
    def r(a, b):
        return "%.2fx" % (a / b) if b and b == b and a == a else "-"
    trows = []
    for s in systems:
        v = [med_of(s, "new", "rate"), med_of(s, "new", "cpu_us"), med_of(s, "reuse", "rate"),
             med_of(s, "reuse", "cpu_us"), fresh.get(s, float("nan")), idle.get(s, float("nan")),
             med_of(s, "parallel", "rate"), med_of(s, "parallel", "cpu_us")]
        n = [med_of("nginx", "new", "rate"), med_of("nginx", "new", "cpu_us"), med_of("nginx", "reuse", "rate"),
             fresh.get("nginx", float("nan")), idle.get("nginx", float("nan")),
             med_of("nginx", "parallel", "rate"), med_of("nginx", "parallel", "cpu_us")]
        trows.append((names[s], "%.0f" % v[0], "%.0f" % v[1], "%.0f" % v[2], "%.0f" % v[3], "%.0f" % v[6],
                      "%.0f" % v[7], "%.0f B" % v[4], "%.0f B" % v[5], r(v[0], n[0]), r(v[1], n[1]), r(v[2], n[2]),
                      r(v[6], n[5]), r(v[7], n[6]), r(v[4], n[3]), r(v[5], n[4])))
    print()
    print("New TLS connections (openssl s_time for %s, each fetching /health; one client process, and %d at once "
          "for the capacity columns; medians of %d rounds) and RSS per idle TLS connection (growth from %d to %d held, "
          "each after one request; in a fresh process before any load, and in the measured process after the "
          "runs):" % (duration, tls_clients, rounds, idle_count, 2 * idle_count))
    print_table(thdr, trows)
    markdown += ["", "New TLS connections (`openssl s_time`, %s; one client process, and %d at once for the "
                 "capacity columns) and RSS per idle TLS connection (growth from %d to %d held open, each after one "
                 "request; in a fresh process before any load, and in the measured process after the runs):" % (
                     duration, tls_clients, idle_count, 2 * idle_count), "",
                 "| " + " | ".join(thdr) + " |", "|" + "---|" * len(thdr)] + \
                ["| " + " | ".join(row) + " |" for row in trows]
    summary["tls"] = {"handshakes": {"%s/%s" % k: v for k, v in hs.items()}, "idle_rss_per_connection": idle,
                      "idle_rss_per_connection_fresh": fresh}
elif idle:
    ihdr = ("system", "RSS per idle connection, fresh", "RSS per idle connection, after runs",
            "idle RSS/nginx, fresh", "idle RSS/nginx, after runs")
    def rel(d, s):
        return "%.2fx" % (d[s] / d["nginx"]) if d.get("nginx") and s in d else "-"
    irows = [(names[s], "%.0f B" % fresh[s] if s in fresh else "-", "%.0f B" % idle[s], rel(fresh, s), rel(idle, s))
             for s in systems if s in idle]
    print()
    print("RSS per idle keep-alive connection (growth from %d to %d opened one after another, one request each, "
          "held 4 s; in a fresh process before any load, and in the measured process after the runs):" %
          (idle_count, 2 * idle_count))
    print_table(ihdr, irows)
    markdown += ["", "RSS per idle keep-alive connection (growth from %d to %d opened one after another, one "
                 "request each, held 4 s; in a fresh process before any load, and in the measured process after "
                 "the runs):" % (idle_count, 2 * idle_count), "", "| " + " | ".join(ihdr) + " |", "|" + "---|" * len(ihdr)] + \
                ["| " + " | ".join(row) + " |" for row in irows]
    summary["idle_rss_per_connection"] = idle
    summary["idle_rss_per_connection_fresh"] = fresh

if idle_rss:
    # The growth per connection counts only pages the process did not
    # already hold: a process that kept the memory it freed after the runs
    # resident places new connections in it. The totals show both.
    held = ", ".join("%s %.1f -> %.1f MiB" % (names[s], b / 2**20, a / 2**20)
                     for s, (b, a) in idle_rss.items())
    line = "RSS before the idle step -> with the %d idle connections held: %s" % (2 * idle_count, held)
    if fresh_rss:
        line += "; fresh processes: " + ", ".join("%s %.1f -> %.1f MiB" % (names[s], b / 2**20, a / 2**20)
                                                  for s, (b, a) in fresh_rss.items())
    print(line)
    markdown += ["", line]
    summary["idle_rss"] = {s: {"before": b, "held": a} for s, (b, a) in idle_rss.items()}
    summary["idle_rss_fresh"] = {s: {"before": b, "held": a} for s, (b, a) in fresh_rss.items()}

nginx_procs = max((int(c["medians"].get("nginx", {}).get("procs", 1)) for c in summary["clients"].values()), default=1)
note = ("CPU and RSS are summed over each system's processes (nginx: master + %d workers; RSS of forked"
        " workers counts shared pages once per process). \"rest us/req\" is the CPU the rest of the machine"
        " spent per request in the same window (the client, the backend, anything else running), \"machine CPU\""
        " the whole machine's busy time (%d cores = %d%%): once it is near that, req/s can only rise by as much"
        " as the system's and the rest's CPU per request fall together." % (
            max(0, nginx_procs - 1), os.cpu_count(), 100 * os.cpu_count()))
print(note)
markdown += ["", note, ""]
with open(os.path.join(out, "compare.json"), "w") as f:
    json.dump(summary, f, indent=2)
if results:
    with open(results, "a") as f:
        f.write("\n".join(markdown) + "\n")
    print("appended to %s" % results)
PY
