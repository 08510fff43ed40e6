#!/usr/bin/env python3
"""Latency percentile curves as a standalone SVG (standard library only).

    svg_chart.py INPUT.json OUTPUT.svg

INPUT is {"title": str, "subtitle": str (optional),
          "series": [{"name": str, "label": str (optional legend text),
                      "points": [[percentile, latency_ms], ...],
                      "max_ms": float (optional)}, ...]}.

The x axis is the percentile on the usual "nines" scale, x = -log10(1 - p/100),
so 50, 90, 99, 99.9 and 99.99 are evenly spaced; the y axis is latency in
milliseconds on a log scale. A series' max (when given) is drawn as a hollow
marker in a column of its own at the right edge, joined by a dotted line,
since the max is not a percentile. compare.sh writes INPUT from its runs; any percentiles the load
generator reports can be plotted.
"""
import json
import math
import sys
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 900, 560
LEFT, RIGHT, TOP, BOTTOM = 80, 220, 70, 70
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
X_TICKS = [(50, "p50"), (90, "p90"), (99, "p99"), (99.9, "p99.9"), (99.99, "p99.99")]
MAX_COLUMN = 0.7  # the max sits this far (in nines) right of p99.99


def nines(p):
    return -math.log10(1.0 - p / 100.0)


def y_ticks(lo, hi):
    """1-2-5 ticks covering [lo, hi] (ms)."""
    ticks = []
    decade = 10.0 ** math.floor(math.log10(lo))
    while decade <= hi * 10:
        for m in (1, 2, 5):
            v = m * decade
            if lo <= v <= hi:
                ticks.append(v)
        decade *= 10
    return ticks


def fmt_ms(v):
    if v >= 100:
        return "%.0f" % v
    if v >= 1:
        return "%g" % round(v, 1)
    return "%g" % round(v, 3)


def render(spec):
    series = [s for s in spec.get("series", []) if s.get("points")]
    if not series:
        raise ValueError("no series with points")
    values = [ms for s in series for _, ms in s["points"] if ms > 0]
    values += [s["max_ms"] for s in series if s.get("max_ms", 0) > 0]
    lo = 10.0 ** math.floor(math.log10(min(values)))
    hi = 10.0 ** math.ceil(math.log10(max(values)))
    if hi <= lo:
        hi = lo * 10
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    x0, x1 = nines(50), nines(99.99) + MAX_COLUMN

    def px(p):
        return LEFT + (nines(p) - x0) / (x1 - x0) * plot_w

    def px_max():
        return LEFT + plot_w

    def py(ms):
        ms = max(ms, lo)
        return TOP + plot_h - (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * plot_h

    out = []
    add = out.append
    add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
        'font-family="Helvetica, Arial, sans-serif" font-size="13">' % (WIDTH, HEIGHT, WIDTH, HEIGHT))
    add('<rect width="100%" height="100%" fill="white"/>')
    add('<text x="%d" y="28" font-size="17" font-weight="bold">%s</text>' % (LEFT, escape(spec.get("title", ""))))
    if spec.get("subtitle"):
        add('<text x="%d" y="48" fill="#555">%s</text>' % (LEFT, escape(spec["subtitle"])))
    # Grid and axes.
    for v in y_ticks(lo, hi):
        y = py(v)
        add('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e4e4e4"/>' % (LEFT, y, LEFT + plot_w, y))
        add('<text x="%d" y="%.1f" text-anchor="end" fill="#333">%s</text>' % (LEFT - 8, y + 4, fmt_ms(v)))
    for x, label in [(px(p), label) for p, label in X_TICKS] + [(px_max(), "max")]:
        add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e4e4"/>' % (x, TOP, x, TOP + plot_h))
        add('<text x="%.1f" y="%d" text-anchor="middle" fill="#333">%s</text>' % (x, TOP + plot_h + 20, label))
    add('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' % (LEFT, TOP, plot_w, plot_h))
    add('<text x="%d" y="%d" text-anchor="middle" fill="#333">percentile ("nines" scale); the max, hollow, is not a percentile</text>'
        % (LEFT + plot_w // 2, HEIGHT - 22))
    add('<text transform="translate(22,%d) rotate(-90)" text-anchor="middle" fill="#333">latency (ms, log scale)</text>'
        % (TOP + plot_h // 2))
    # Series.
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        pts = sorted((p, ms) for p, ms in s["points"] if 50 <= p <= 99.99)
        path = " ".join("%s%.1f,%.1f" % ("M" if k == 0 else "L", px(p), py(ms)) for k, (p, ms) in enumerate(pts))
        add('<path d="%s" fill="none" stroke="%s" stroke-width="2.5"/>' % (path, colour))
        for p, ms in pts:
            add('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s p%g: %s ms</title></circle>'
                % (px(p), py(ms), colour, escape(s["name"]), p, fmt_ms(ms)))
        if s.get("max_ms", 0) > 0 and pts:
            lx, ly = px(pts[-1][0]), py(pts[-1][1])
            mx, my = px_max(), py(s["max_ms"])
            add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="3,4"/>'
                % (lx, ly, mx, my, colour))
            add('<circle cx="%.1f" cy="%.1f" r="4.5" fill="white" stroke="%s" stroke-width="2"><title>%s max: %s ms'
                '</title></circle>' % (mx, my, colour, escape(s["name"]), fmt_ms(s["max_ms"])))
        # Legend.
        ly = TOP + 10 + i * 44
        lx = LEFT + plot_w + 20
        add('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>' % (lx, ly, lx + 24, ly, colour))
        add('<text x="%d" y="%d" font-weight="bold">%s</text>' % (lx + 32, ly + 4, escape(s["name"])))
        if s.get("label"):
            add('<text x="%d" y="%d" fill="#555" font-size="11">%s</text>' % (lx + 32, ly + 20, escape(s["label"])))
    add('</svg>')
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    svg = render(spec)
    with open(argv[2], "w", encoding="utf-8") as f:
        f.write(svg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
