#!/usr/bin/env bash
# The routing experiment of docs/results.md: a dense baseline and each router at the same token
# budget and the same active FFN FLOPs per token, on the fortune corpus; then the summary table.
#   CONFIGS  config folder (default configs/experiment/d64: d=64, the main experiment;
#            configs/experiment holds the d=128 set)
#   STEPS    optimizer steps of 32 x 128 tokens (default 2000); EVERY validation interval (STEPS/40)
#   RUNS     which configs (default: all eight); OUT output folder (default out/experiment-<configs>)
#   JOBS     runs at a time (default 1 with all threads; 2 runs two at once with one thread each,
#            which on 2 cores finishes sooner: small models do not keep two threads busy)
# A short version: STEPS=300 RUNS="dense topk" bash scripts/experiment_routers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
CONFIGS=${CONFIGS:-configs/experiment/d64}
STEPS=${STEPS:-2000}
EVERY=${EVERY:-$(( STEPS / 40 > 0 ? STEPS / 40 : 1 ))}
OUT=${OUT:-out/experiment-$(basename "$CONFIGS")}
RUNS=${RUNS:-"dense topk switch expert-choice sigmoid-bias fine-shared topk-e32 no-balance"}
JOBS=${JOBS:-1}
THREADS=$([ "$JOBS" -gt 1 ] && echo 1 || echo 0)
mkdir -p "$OUT"
run() {
  "$MOE" train --model-config "$CONFIGS/$1.json" --out "$OUT/$1" --steps "$STEPS" --eval-every "$EVERY" \
    --eval-tokens 32768 --save-every "$STEPS" --seed 0 --threads "$THREADS" --overwrite >"$OUT/$1.log" 2>&1
  echo "== $1: $(tail -n 1 "$OUT/$1.log")"
}
for r in $RUNS; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  run "$r" &
done
wait
/usr/bin/python3 scripts/summarize_runs.py "$OUT" $RUNS
