#!/usr/bin/env python3
"""Agreement against model evaluations for the fast samplers (issue 27), as an SVG (no plotting library needed).

Reads docs/demo/guided/agreement-issue27-300.txt (sample-eval's table of the 300-sample rows) and writes
docs/demo/guided/solvers-agreement.svg: agree@1 with its 95 % Wilson interval against NFE, one series per sampler,
scale 100 unless noted, --clip_denoised True.
Usage: python3 docs/demo/solver-plot.py   (from the repository root)
"""
import re

TABLE = "docs/demo/guided/agreement-issue27-300.txt"
OUT = "docs/demo/guided/solvers-agreement.svg"

# row folder -> (series, NFE); rows not listed (other scales, spacings, the interval) are left out.
ROWS = {
    "ancestral50-s200": ("ancestral (scale 200)", 50),
    "ddim20-s100": ("DDIM, the original's ddim20 respacing", 20),
    "dpmpp1-10-s100": ("DPM-Solver++ order 1 (DDIM's update)", 10),
    "dpmpp1-15-s100": ("DPM-Solver++ order 1 (DDIM's update)", 15),
    "dpmpp1-20-s100": ("DPM-Solver++ order 1 (DDIM's update)", 20),
    "dpmpp1-25-s100": ("DPM-Solver++ order 1 (DDIM's update)", 25),
    "dpmpp1-20-s70": ("DPM-Solver++ order 1, scale 70", 20),
    "dpmpp2m-10-s100": ("DPM-Solver++ 2M", 10),
    "dpmpp2m-15-s100": ("DPM-Solver++ 2M", 15),
    "dpmpp2m-20-s100": ("DPM-Solver++ 2M", 20),
    "dpmpp2m-25-s100": ("DPM-Solver++ 2M", 25),
    "dpmpp2s-15-s100": ("DPM-Solver++ 2S", 15),
    "dpmpp2s-20-s100": ("DPM-Solver++ 2S", 20),
    "dpmpp2s-25-s100": ("DPM-Solver++ 2S", 25),
    "dpmpp3m-15-s100": ("DPM-Solver++ 3M", 15),
    "dpmpp3m-20-s100": ("DPM-Solver++ 3M", 20),
    "dpmpp3m-25-s100": ("DPM-Solver++ 3M", 25),
    "unipcbh2-10-s100": ("UniPC bh2", 10),
    "unipcbh2-15-s100": ("UniPC bh2", 15),
    "unipcbh2-20-s100": ("UniPC bh2", 20),
    "unipcbh2-25-s100": ("UniPC bh2", 25),
    "unipcbh1-20-s100": ("UniPC bh1", 20),
}
# DPM-Solver-2/-3 on ε (0.36 and 0.54 at 20 steps) fall below the plotted range and are left to the table.
COLOURS = ["#000000", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

points = {}
for line in open(TABLE, encoding="utf-8"):
    m = re.match(r"(\S+)/samples_\d+x32x32x3\.npz\s+(\d+)\s+([\d.]+)\s+\[([\d.]+), ([\d.]+)\]", line)
    if m and m.group(1) in ROWS:
        series, nfe = ROWS[m.group(1)]
        points.setdefault(series, []).append((nfe, float(m.group(3)), float(m.group(4)), float(m.group(5))))

W, H, L, R, T, B = 840, 430, 60, 320, 20, 50
def x(nfe): return L + (nfe - 5) / 50 * (W - L - R)
def y(v): return T + (1.0 - v) / 0.35 * (H - T - B)  # agree@1 from 0.65 to 1.0
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>']
for v in [0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]:
    svg.append(f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/><text x="{L - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
for n in [10, 15, 20, 25, 50]:
    svg.append(f'<line x1="{x(n):.1f}" x2="{x(n):.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/><text x="{x(n):.1f}" y="{H - B + 16}" text-anchor="middle">{n}</text>')
svg.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">model evaluations per sample (NFE)</text>')
svg.append(f'<text x="16" y="{(T + H - B) / 2}" transform="rotate(-90 16 {(T + H - B) / 2})" text-anchor="middle">agree@1 (95 % Wilson interval)</text>')
for i, (series, pts) in enumerate(points.items()):
    c = COLOURS[i % len(COLOURS)]
    pts.sort()
    dx = (i - len(points) / 2) * 1.5
    if len(pts) > 1:
        svg.append('<polyline fill="none" stroke="%s" points="%s"/>' % (c, " ".join(f"{x(n) + dx:.1f},{y(a):.1f}" for n, a, _, _ in pts)))
    for n, a, lo, hi in pts:
        svg.append(f'<line x1="{x(n) + dx:.1f}" x2="{x(n) + dx:.1f}" y1="{y(lo):.1f}" y2="{y(hi):.1f}" stroke="{c}"/>'
                   f'<circle cx="{x(n) + dx:.1f}" cy="{y(a):.1f}" r="3.5" fill="{c}"/>')
    svg.append(f'<circle cx="{W - R + 20}" cy="{T + 10 + 20 * i}" r="4" fill="{c}"/><text x="{W - R + 30}" y="{T + 14 + 20 * i}">{series}</text>')
svg.append(f'<text x="{W - R + 14}" y="{T + 24 + 20 * len(points)}" font-size="11">scale 100 unless noted; 300 samples</text>')
svg.append(f'<text x="{W - R + 14}" y="{T + 38 + 20 * len(points)}" font-size="11">each; --clip_denoised True</text>')
svg.append("</svg>")
open(OUT, "w", encoding="utf-8").write("\n".join(svg) + "\n")
print(f"wrote {OUT}: " + ", ".join(f"{s} ({len(p)})" for s, p in points.items()))
