#!/usr/bin/env bash
# The PEER experiment of docs/results.md: the middle layer's FFN (layer 2 of 4, d=128) is a dense
# SwiGLU (F=512), a top-2-of-8 MoE (experts F=256: the same FLOPs) or a PEER layer (4 heads x 16
# experts, key dim 32, batch-normalised queries) with N = 128^2 ... 1024^2 experts, whose FLOPs
# (query, sub-key scoring and the 64 neurons) stay at or below the dense layer's. All other layers
# are the same dense SwiGLU; the same token budget for every run, on the fortune corpus.
# ffn-peer-1024-h2 (not in the default RUNS) holds 1024^2 experts at 128^2's FLOPs (2 heads x 32).
#   STEPS (default 600) and RUNS (default: the six above) shorten it; OUT (default
#   out/experiment-peer); SEED (default 0) seeds initialisation and data order; JOBS=2 runs two at
#   once with one thread each (THREADS overrides the threads per run).
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
STEPS=${STEPS:-600}
OUT=${OUT:-out/experiment-peer}
RUNS=${RUNS:-"ffn-dense ffn-moe ffn-peer-128 ffn-peer-256 ffn-peer-512 ffn-peer-1024"}
SEED=${SEED:-0}
JOBS=${JOBS:-1}
THREADS=${THREADS:-$([ "$JOBS" -gt 1 ] && echo 1 || echo 0)}  # 0: all cores
EVERY=$(( STEPS / 24 > 0 ? STEPS / 24 : 1 ))
mkdir -p "$OUT"
run() {
  "$MOE" train --model-config "configs/experiment/peer/$1.json" --out "$OUT/$1" --steps "$STEPS" \
    --eval-every "$EVERY" --eval-tokens 32768 --save-every "$STEPS" --seed "$SEED" --threads "$THREADS" --overwrite >"$OUT/$1.log" 2>&1
  echo "== $1: $(tail -n 1 "$OUT/$1.log")"
  if [[ $1 == ffn-peer-* ]]; then
    "$MOE" experts --model "$OUT/$1" --data "$OUT/$1/heldout.txt" --max-tokens 65536 --json | tail -n 1 >"$OUT/$1/peer_usage.json"
  fi
}
for r in $RUNS; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  run "$r" &
done
wait
/usr/bin/python3 scripts/summarize_runs.py "$OUT" $RUNS
# Forward FLOPs per token of layer 2's FFN, and the PEER usage statistics on the held-out text.
/usr/bin/python3 - "$OUT" $RUNS <<'PY'
import json, math, os, sys
out, runs = sys.argv[1], sys.argv[2:]
print("\n| run | layer-2 FFN forward FLOPs / token | experts | experts used | KL from uniform | head overlap |")
print("|---|---|---|---|---|---|")
for r in runs:
    c = json.load(open(f"configs/experiment/peer/{r}.json"))
    d = c["hidden_size"]
    used = kl = ov = "-"
    if c.get("ffn_type") == "peer":
        h, k, dk, n = c["peer_heads"], c["peer_top_k"], c["peer_key_dim"], c["peer_num_experts"]
        flops = 2 * d * h * dk + 2 * h * dk * math.isqrt(n) + 4 * h * k * d
        experts = n
        p = os.path.join(out, r, "peer_usage.json")
        if os.path.exists(p):
            s = json.load(open(p))["peer"]["2"]["(all inputs)"]
            used, kl, ov = f"{s['fraction_used']:.1%}", f"{s['kl_from_uniform']:.2f}", f"{s['head_overlap']:.2%}"
    elif c["model_type"] == "mixtral":
        flops = 2 * 3 * d * c["intermediate_size"] * c["num_experts_per_tok"] + 2 * d * c["num_local_experts"]
        experts = c["num_local_experts"]
    else:
        flops = 2 * 3 * d * c["intermediate_size"]
        experts = 1
    print(f"| {r} | {flops:,} | {experts:,} | {used} | {kl} | {ov} |")
PY
