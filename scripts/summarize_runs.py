#!/usr/bin/env python3
"""Summarises training runs (their metrics.jsonl) as the markdown table of docs/results.md:
final validation loss, the first step at which each run reaches the dense baseline's final
validation loss, MaxVio (mean over layers, last 10% of steps), dropped fraction and tokens/s.
Usage: summarize_runs.py [--plot FILE.svg] OUT_DIR RUN... (the first run whose name contains
'dense' is the baseline). --plot also draws every run's validation loss against step."""
import json
import os
import sys


def load(path):
    rows = []
    for line in open(path):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return rows


def plot(path, data):
    """Validation loss against step, one line per run, as a hand-written SVG (no plotting library
    on the machine); the y axis starts after the first 10% of the steps, where the curves separate."""
    curves = {r: [(m["step"], m["val_loss"]) for m in rows if "val_loss" in m] for r, rows in data.items()}
    curves = {r: c for r, c in curves.items() if c}
    xmax = max(s for c in curves.values() for s, _ in c)
    late = [v for c in curves.values() for s, v in c if s >= 0.1 * xmax]
    y0, y1 = min(late), max(late)
    y0, y1 = y0 - 0.03 * (y1 - y0), y1 + 0.03 * (y1 - y0)
    W, H, L, R, T, B = 760, 440, 60, 170, 40, 45
    px = lambda x: L + x / xmax * (W - L - R)
    py = lambda y: T + (1 - (min(y, y1) - y0) / (y1 - y0)) * (H - T - B)
    colors = ["#000000", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    o = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' font-family='sans-serif' font-size='12'>",
         "<rect width='100%' height='100%' fill='white'/>",
         f"<text x='{W / 2}' y='22' text-anchor='middle' font-size='15'>Validation loss (nats per byte) against step</text>"]
    for i in range(6):
        y = y0 + (y1 - y0) * i / 5
        o.append(f"<line x1='{L}' x2='{W - R}' y1='{py(y):.1f}' y2='{py(y):.1f}' stroke='#ddd'/>"
                 f"<text x='{L - 6}' y='{py(y) + 4:.1f}' text-anchor='end'>{y:.3f}</text>")
        o.append(f"<text x='{px(xmax * i / 5):.1f}' y='{H - B + 18}' text-anchor='middle'>{xmax * i / 5:.0f}</text>")
    o.append(f"<rect x='{L}' y='{T}' width='{W - L - R}' height='{H - T - B}' fill='none' stroke='#333'/>")
    dense = next((c for r, c in curves.items() if "dense" in r), None)
    if dense:  # the level every sparse run is timed to
        yb = py(dense[-1][1])
        o.append(f"<line x1='{L}' x2='{W - R}' y1='{yb:.1f}' y2='{yb:.1f}' stroke='#000' stroke-dasharray='5,4'/>"
                 f"<text x='{L + 6}' y='{yb - 5:.1f}' font-size='10'>dense final</text>")
    for k, (r, c) in enumerate(curves.items()):
        col = colors[k % len(colors)]
        pts = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in c)
        o.append(f"<polyline fill='none' stroke='{col}' stroke-width='{2.5 if 'dense' in r else 1.5}' points='{pts}'/>")
        o.append(f"<line x1='{W - R + 10}' x2='{W - R + 34}' y1='{T + 12 + 20 * k}' y2='{T + 12 + 20 * k}' "
                 f"stroke='{col}' stroke-width='3'/><text x='{W - R + 40}' y='{T + 16 + 20 * k}'>{r}</text>")
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def main():
    args = sys.argv[1:]
    plot_path = None
    if args and args[0] == "--plot":
        plot_path, args = args[1], args[2:]
    out, runs = args[0], args[1:]
    data = {r: load(os.path.join(out, r, "metrics.jsonl")) for r in runs if os.path.exists(os.path.join(out, r, "metrics.jsonl"))}
    base = None
    dense = next((r for r in data if "dense" in r), None)
    if dense:
        vals = [m["val_loss"] for m in data[dense] if "val_loss" in m]
        base = vals[-1] if vals else None
    print("| run | final val loss | step reaching dense final val loss | of dense steps | MaxVio (end) | dropped | tokens/s as run |")
    print("|---|---|---|---|---|---|---|")
    for r, rows in data.items():
        vals = [(m["step"], m["val_loss"]) for m in rows if "val_loss" in m]
        final = vals[-1][1] if vals else float("nan")
        reach = next((s for s, v in vals if base is not None and v <= base), None)
        n = len(rows)
        tail = rows[max(0, n - max(1, n // 10)):]
        mv = [sum(m["max_vio"]) / len(m["max_vio"]) for m in tail if m.get("max_vio")]
        dr = [sum(m["dropped_fraction"]) / len(m["dropped_fraction"]) for m in tail if m.get("dropped_fraction")]
        tps = sorted(m["tokens_per_s"] for m in rows)[len(rows) // 2] if rows else 0
        steps = rows[-1]["step"] if rows else 0
        frac = f"{reach / steps:.0%}" if reach and steps else "-"
        print(f"| {r} | {final:.4f} | {reach if reach else 'not reached'} | {frac} | "
              f"{sum(mv) / len(mv) if mv else 0:.2f} | {sum(dr) / len(dr) if dr else 0:.3f} | {tps:.0f} |")
    if plot_path:
        plot(plot_path, data)


if __name__ == "__main__":
    main()
