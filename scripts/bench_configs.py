#!/usr/bin/env python3
"""Training-step speed of several model configs, measured round-robin (A B C A B C ...) with
`moe bench train`, so that a slow phase of a shared machine hits every config alike: median tokens/s
per config and, per round, the ratio to the first config (median over rounds).
Usage: bench_configs.py [--rounds R] CONFIG.json...   (MOE: the moe binary, default build/tools/moe/moe)"""
import argparse
import json
import os
import statistics
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("configs", nargs="+")
    a = ap.parse_args()
    moe = os.environ.get("MOE", "build/tools/moe/moe")
    tps = {c: [] for c in a.configs}
    for _ in range(a.rounds):
        for c in a.configs:
            out = subprocess.run([moe, "bench", "train", "--model-config", c, "--steps", "3", "--json"],
                                 check=True, capture_output=True, text=True).stdout
            tps[c].append(json.loads(out.strip().splitlines()[-1])["tokens_per_s"])
    base = a.configs[0]
    print("| config | training tokens/s | vs " + os.path.basename(base) + " |")
    print("|---|---|---|")
    for c in a.configs:
        rel = statistics.median(x / y for x, y in zip(tps[c], tps[base]))
        print(f"| {os.path.basename(c)} | {statistics.median(tps[c]):,.0f} | {rel:.2f} |")


if __name__ == "__main__":
    main()
