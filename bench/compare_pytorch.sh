#!/usr/bin/env bash
# One row of docs/performance.md: `moe bench moe-layer` and the PyTorch block (bench/pytorch_moe_block.py)
# on the same shape, alternated PAIRS times (default 3) in one run; the PyTorch ratio is the median of
# the per-pair ratios, so a slow phase of the shared machine hits both sides of a pair alike.
# Usage: bench/compare_pytorch.sh D F E K T [uniform|skewed|learned]
set -euo pipefail
cd "$(dirname "$0")/.."
D=$1 F=$2 E=$3 K=$4 T=$5 ROUTING=${6:-uniform}
MOE=${MOE:-build/tools/moe/moe}
PAIRS=${PAIRS:-3}
# Debian's OpenBLAS misdetects some CPUs (see ../shared/facts/machine.md): give it the best kernel
# the CPU can run, SkylakeX with AVX-512, else Haswell (AVX2; SkylakeX there dies of SIGILL).
if grep -qw avx512f /proc/cpuinfo; then CORE=SkylakeX; else CORE=Haswell; fi
ours=() theirs=()
for _ in $(seq "$PAIRS"); do
  ours+=("$("$MOE" bench moe-layer --d-model "$D" --d-ff "$F" --experts "$E" --top-k "$K" --tokens "$T" --routing "$ROUTING" --json | tail -n 1)")
  theirs+=("$(OMP_NUM_THREADS=2 OPENBLAS_CORETYPE=$CORE /usr/bin/python3 bench/pytorch_moe_block.py --d-model "$D" --d-ff "$F" --experts "$E" --top-k "$K" --tokens "$T" --json | tail -n 1)")
done
python3 - "$CORE" "${#ours[@]}" "${ours[@]}" "${theirs[@]}" <<'PY'
import json, statistics, sys
core, n = sys.argv[1], int(sys.argv[2])
ours = [json.loads(s) for s in sys.argv[3:3 + n]]
theirs = [json.loads(s) for s in sys.argv[3 + n:3 + 2 * n]]
med = lambda key, runs: statistics.median(r[key] for r in runs)
o = {k: med(k, ours) for k in ["fwdbwd_tokens_per_s", "fwdbwd_gflops", "dense_fwdbwd_gflops", "ratio", "gemm_gflops",
                                "ratio_vs_gemm", "share_outside_expert_gemms", "share_outside_expert_bank", "max_load_over_mean"]}
t = med("fwdbwd_gflops", theirs)
vs_torch = statistics.median(a["fwdbwd_gflops"] / b["fwdbwd_gflops"] for a, b in zip(ours, theirs))
r = ours[0]
print(f"| {r['d_model']}, {r['d_ff']}, {r['experts']}, {r['top_k']}, {r['tokens']}, {r['routing']} "
      f"(max load {o['max_load_over_mean']:.2f}x) | {o['fwdbwd_tokens_per_s']:.0f} | {o['fwdbwd_gflops']:.1f} "
      f"| {o['dense_fwdbwd_gflops']:.1f} | {o['ratio']:.2f} | {o['gemm_gflops']:.1f} | {o['ratio_vs_gemm']:.2f} "
      f"| {o['share_outside_expert_gemms']*100:.0f}% | {t:.1f} | {vs_torch:.2f} |")
print(json.dumps({"pairs": n, "openblas_coretype": core, "ours": o, "pytorch_fwdbwd_gflops": t,
                  "pytorch_dense_fwdbwd_gflops": med("dense_fwdbwd_gflops", theirs), "vs_pytorch": vs_torch}))
PY
