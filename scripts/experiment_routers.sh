#!/usr/bin/env bash
# The routing experiment of docs/results.md: the same token budget and the same active FFN width
# per token (512) for a dense baseline and each router, on the fortune corpus.
#   STEPS (default 600) and RUNS (default: all) shorten it; OUT (default out/experiment).
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
STEPS=${STEPS:-600}
OUT=${OUT:-out/experiment}
RUNS=${RUNS:-"dense topk switch expert-choice sigmoid-bias fine-shared no-balance"}
EVERY=$(( STEPS / 24 > 0 ? STEPS / 24 : 1 ))
for r in $RUNS; do
  echo "== $r"
  "$MOE" train --model-config "configs/experiment/$r.json" --out "$OUT/$r" --steps "$STEPS" \
    --eval-every "$EVERY" --eval-tokens 32768 --save-every "$STEPS" --seed 0 --overwrite 2>&1 | tail -n 1
done
/usr/bin/python3 scripts/summarize_runs.py "$OUT" $RUNS
