#!/usr/bin/env bash
# Exactness of expert parallelism on the routing experiment's models (d = 128, 4 layers, 8 experts;
# configs/experiment/{topk,switch,sigmoid-bias,expert-choice}.json): 50 training steps of batch
# 16 x 128 in one process, then under mpirun at R = 2, R = 4 and W = 4, R = 2 (oversubscribed);
# prints the largest relative difference of any step's loss. ~5 min on 2 cores.
# Usage: bash scripts/exactness_expert_parallel.sh   (output also in out/exactness_ep/)
#        EXACT_BLOCKS=4 bash scripts/exactness_expert_parallel.sh   (layout-exact sums, --exact-blocks;
#        output in out/exactness_ep_exact/)
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
OUT=out/exactness_ep
EXACT_BLOCKS=${EXACT_BLOCKS:-0}
[ "$EXACT_BLOCKS" = 0 ] || OUT=out/exactness_ep_exact
rm -rf "$OUT" && mkdir -p "$OUT"
MPI=(mpirun -q --oversubscribe --allow-run-as-root --bind-to none --mca btl self,vader --mca oob_tcp_if_include lo)
ARGS=(--steps 50 --batch-size 16 --context 128 --eval-every 25 --seed 1 --threads 1 --exact-blocks "$EXACT_BLOCKS")
for cfg in topk switch sigmoid-bias expert-choice; do
  conf=configs/experiment/$cfg.json
  "$MOE" train --model-config "$conf" "${ARGS[@]}" --out "$OUT/$cfg.1" >/dev/null 2>&1
  for layout in "2 2" "4 4" "4 2"; do
    set -- $layout
    "${MPI[@]}" -np "$1" "$MOE" train --model-config "$conf" "${ARGS[@]}" --expert-parallel "$2" --out "$OUT/$cfg.w$1r$2" >/dev/null 2>&1
    python3 - "$OUT/$cfg.1/metrics.jsonl" "$OUT/$cfg.w$1r$2/metrics.jsonl" "$cfg W=$1 R=$2" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 50
rel = [abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b)]
first = next((i + 1 for i, r in enumerate(rel) if r > 1e-5), None)
same = sum(x["loss"] == y["loss"] for x, y in zip(a, b))
print(f"{sys.argv[3]}: worst relative loss difference over 50 steps {max(rel):.2e}; "
      f"first step beyond 1e-5: {first or 'none'}; steps with bit-identical losses: {same}/50")
PY
  done
done
