#!/usr/bin/env bash
# The main job: train the default small sparse MoE language model on the multilingual fortune
# corpus, then evaluate it on held-out text and sample a continuation.
#   MOE_MAIN_STEPS  optimizer steps (default 600, a few minutes on 2 cores); CI uses fewer
#   MOE_MAIN_OUT    checkpoint directory (default out/fortune-moe)
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
STEPS=${MOE_MAIN_STEPS:-600}
OUT=${MOE_MAIN_OUT:-out/fortune-moe}
EVERY=$(( STEPS / 6 > 0 ? STEPS / 6 : 1 ))

echo "== moe train: default MoE config, fortune corpus, $STEPS steps -> $OUT"
"$MOE" train --out "$OUT" --steps "$STEPS" --eval-every "$EVERY" --overwrite
echo "== moe info"
"$MOE" info --model "$OUT"
echo "== moe eval on the held-out text ($OUT/heldout.txt)"
"$MOE" eval --model "$OUT" --data "$OUT/heldout.txt" --json
echo "== moe generate"
"$MOE" generate --model "$OUT" --prompt "Q: What is the meaning of life?
A: " --max-tokens 200 --temperature 0.7 --seed 1
echo "== done: metrics in $OUT/metrics.jsonl"
