#!/usr/bin/env bash
# One row of docs/performance.md: `moe bench moe-layer` and the PyTorch block on the same shape,
# back to back in one run. Usage: bench/compare_pytorch.sh D F E K T [uniform|skewed]
set -euo pipefail
cd "$(dirname "$0")/.."
D=$1 F=$2 E=$3 K=$4 T=$5 ROUTING=${6:-uniform}
MOE=${MOE:-build/tools/moe/moe}
ours=$("$MOE" bench moe-layer --d-model "$D" --d-ff "$F" --experts "$E" --top-k "$K" --tokens "$T" --routing "$ROUTING" --json | tail -n 1)
theirs=$(OMP_NUM_THREADS=2 OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/pytorch_moe_block.py --d-model "$D" --d-ff "$F" --experts "$E" --top-k "$K" --tokens "$T" --json | tail -n 1)
python3 - "$ours" "$theirs" <<'PY'
import json, sys
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"| {o['d_model']}, {o['d_ff']}, {o['experts']}, {o['top_k']}, {o['tokens']}, {o['routing']} "
      f"| {o['fwdbwd_tokens_per_s']:.0f} | {o['fwdbwd_gflops']:.1f} | {o['dense_fwdbwd_gflops']:.1f} | {o['ratio']:.2f} "
      f"| {o['gemm_gflops']:.1f} | {o['ratio_vs_gemm']:.2f} | {o['share_outside_expert_bank']*100:.0f}% "
      f"| {t['fwdbwd_gflops']:.1f} | {o['fwdbwd_gflops']/t['fwdbwd_gflops']:.2f} |")
PY
