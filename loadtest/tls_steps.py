#!/usr/bin/env python3
"""Where a new TLS connection's wall time goes, step by step on the wire.

    loadtest/tls_steps.py --port PORT [--seconds 2] [--tickets 1] [--mode new|reuse] [--raw FILE]

Runs `openssl s_time -connect 127.0.0.1:PORT -new -www /health` for --seconds
while capturing every TCP packet of PORT on the loopback interface (an
AF_PACKET socket with kernel timestamps, so it needs root; no tcpdump), then
prints as JSON the median over the connections of each step: the client's
ClientHello after its SYN, the server's flight after the ClientHello, the
client's Finished after the flight, the first ticket after the client's
Finished, the request after the Finished, the response, close_notify and the
server's FIN after the request, SYN to last packet, and the client's time to
its next SYN. Segments are told apart by their order: the client sends three
(ClientHello, Finished, request); the server its flight, --tickets session
tickets (TLS 1.3: the gateway sends 1, nginx 2), the response and, last,
close_notify (in the response's segment or its own). Connections that do
not fit that shape (a reused port within the capture) are left out and
counted. The capture runs on the same machine as the client and the
server, so it adds load: compare servers in alternating runs.
"""
import argparse, json, socket, statistics, struct, subprocess, sys, threading, time

FIN, SYN = 1, 2


def capture(port, stop, packets):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
    s.bind(("lo", 0))
    so_timestampns = getattr(socket, "SO_TIMESTAMPNS", 35)
    s.setsockopt(socket.SOL_SOCKET, so_timestampns, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            data, anc, _, addr = s.recvmsg(65600, 64)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:  # loopback shows each packet twice
            continue
        ts = None
        for _, typ, d in anc:
            if typ == so_timestampns:
                sec, ns = struct.unpack("qq", d[:16])
                ts = sec + ns * 1e-9
        ip = data[14:]
        if ts is None or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        tcp = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
        sport, dport = struct.unpack("!HH", tcp[:4])
        if port not in (sport, dport):
            continue
        payload = len(tcp) - (tcp[12] >> 4) * 4
        client = dport if sport == port else sport
        packets.setdefault(client, []).append((ts, "s" if sport == port else "c", tcp[13], payload))
    s.close()


def steps(conns, tickets):
    rows, shapes, skipped = [], {}, 0
    for ev in conns.values():
        ev.sort()
        syns = [e for e in ev if e[1] == "c" and e[2] & SYN]
        cd = [t for t, d, fl, n in ev if d == "c" and n > 0]
        sd = [t for t, d, fl, n in ev if d == "s" and n > 0]
        sfin = [t for t, d, fl, n in ev if d == "s" and fl & FIN]
        if len(syns) != 1 or ev[0] is not syns[0] or len(cd) != 3 or len(sd) < 2 + tickets:
            skipped += 1
            continue
        t0 = ev[0][0]
        shapes[len(sd)] = shapes.get(len(sd), 0) + 1
        rows.append({"ClientHello after SYN": cd[0] - t0,
                     "server flight after ClientHello": sd[0] - cd[0],
                     "client Finished after flight": cd[1] - sd[0],
                     "first ticket after client Finished": (sd[1] - cd[1]) if tickets else None,
                     "request after client Finished": cd[2] - cd[1],
                     "response after request": sd[1 + tickets] - cd[2],
                     "close_notify after request": sd[-1] - cd[2],
                     "server FIN after request": (sfin[0] - cd[2]) if sfin else None,
                     "SYN to last packet": ev[-1][0] - t0,
                     "_start": t0, "_end": ev[-1][0]})
    if not rows:
        return {"connections": 0, "skipped": skipped}
    rows.sort(key=lambda r: r["_start"])
    out = {}
    for k in rows[0]:
        if not k.startswith("_"):
            v = [r[k] for r in rows if r[k] is not None]
            out[k + " (us)"] = round(statistics.median(v) * 1e6, 1) if v else None
    gaps = [b["_start"] - a["_end"] for a, b in zip(rows, rows[1:])]
    if gaps:
        out["last packet to next SYN, the client (us)"] = round(statistics.median(gaps) * 1e6, 1)
    out["server data segments per connection"] = {str(k): v for k, v in sorted(shapes.items())}
    out["connections"] = len(rows)
    out["skipped"] = skipped
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--tickets", type=int, default=1, help="session tickets the server sends after the handshake")
    ap.add_argument("--mode", choices=("new", "reuse"), default="new")
    ap.add_argument("--raw", help="also write the captured packets to this JSON file")
    a = ap.parse_args()
    if not 0 < a.port < 65536 or a.seconds < 1 or a.tickets < 0:
        print("tls_steps.py: --port 1-65535, --seconds at least 1, --tickets at least 0", file=sys.stderr)
        return 2
    packets, stop = {}, threading.Event()
    t = threading.Thread(target=capture, args=(a.port, stop, packets))
    t.start()
    time.sleep(0.3)
    try:
        run = subprocess.run(["openssl", "s_time", "-connect", "127.0.0.1:%d" % a.port, "-" + a.mode,
                              "-time", str(a.seconds), "-www", "/health"], capture_output=True, text=True,
                             timeout=a.seconds + 30)
    finally:
        time.sleep(0.3)
        stop.set()
        t.join()
    if a.raw:
        with open(a.raw, "w") as f:
            json.dump({str(k): v for k, v in packets.items()}, f)
    result = steps(packets, a.tickets)
    if result["connections"] == 0:
        print("tls_steps.py: no complete connection captured; s_time said: %s" % (run.stdout + run.stderr)[-500:],
              file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
