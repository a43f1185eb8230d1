#!/usr/bin/env python3
"""Summarises training runs (their metrics.jsonl) as the markdown table of docs/results.md:
final validation loss, the first step at which each run reaches the dense baseline's final
validation loss, MaxVio (mean over layers, last 10% of steps), dropped fraction and tokens/s.
Usage: summarize_runs.py OUT_DIR RUN... (the first run whose name contains 'dense' is the baseline)."""
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


def main():
    out, runs = sys.argv[1], sys.argv[2:]
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


if __name__ == "__main__":
    main()
