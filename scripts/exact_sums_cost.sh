#!/usr/bin/env bash
# The cost of layout-exact sums: training tokens/s of `moe train --exact-blocks 4` over the default,
# on the routing experiment's top-k model (d = 128, 4 layers, 8 experts, batch 16 x 128), one
# process, at 1 and 2 threads. Rounds alternate the two modes (the machine is shared and noisy);
# each run's figure is the median step after the first. ~4 min on 2 cores.
# Usage: bash scripts/exact_sums_cost.sh [ROUNDS]   (MOE=binary; output also in out/exact_sums_cost/)
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
ROUNDS=${1:-3}
OUT=out/exact_sums_cost
rm -rf "$OUT" && mkdir -p "$OUT"
ARGS=(--model-config configs/experiment/topk.json --steps 12 --batch-size 16 --context 128 --eval-every 0 --save-every 0 --seed 1)
median_tps() {
  /usr/bin/python3 -c '
import json, statistics, sys
t = [json.loads(l)["tokens_per_s"] for l in open(sys.argv[1])][1:]
print(statistics.median(t))' "$1/metrics.jsonl"
}
for threads in 1 2; do
  for r in $(seq "$ROUNDS"); do
    for g in 0 4; do
      "$MOE" train "${ARGS[@]}" --threads "$threads" --exact-blocks "$g" --out "$OUT/t$threads.g$g.r$r" >/dev/null 2>&1
      echo "$threads $g $r $(median_tps "$OUT/t$threads.g$g.r$r")" >>"$OUT/results.txt"
    done
  done
done
/usr/bin/python3 - "$OUT/results.txt" <<'PY'
import collections, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for threads in ("1", "2"):
    by_round = collections.defaultdict(dict)
    for t, g, r, tps in rows:
        if t == threads:
            by_round[r][g] = float(tps)
    ratios = [v["4"] / v["0"] for v in by_round.values()]
    base = statistics.median(v["0"] for v in by_round.values())
    print(f"{threads} thread(s): default {base:.0f} tokens/s; --exact-blocks 4 over default: "
          f"median {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}, {len(ratios)} rounds)")
PY
