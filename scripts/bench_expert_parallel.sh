#!/usr/bin/env bash
# Expert parallelism on this machine: (1) overhead: R = 2 ranks of 1 thread against one process of
# 2 threads, same model and global batch, for `moe bench train` and `moe bench moe-layer`, run in
# alternation ROUNDS times (the machine is shared and noisy: the median of per-round ratios);
# (2) memory: peak resident memory per rank at R = 1, 2, 4 for a model whose experts dominate
# (configs/experiment/ep-memory.json: 16 experts of 256 x 1024), beside the expert weights, gradients
# and AdamW moments each rank holds (16 bytes per expert parameter, / R).
# Usage: bash scripts/bench_expert_parallel.sh   (ROUNDS=5; ~5 min on 2 cores)
# Output: a table on stdout and JSON lines in out/bench_ep/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
ROUNDS=${ROUNDS:-5}
OUT=out/bench_ep
mkdir -p "$OUT"
: >"$OUT/results.jsonl"
MPI=(mpirun -q --oversubscribe --allow-run-as-root --bind-to none --mca btl self,vader --mca oob_tcp_if_include lo)
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); flags: $(grep -o -w -E 'avx512f|avx512_bf16|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"

last_json() { tail -n 1; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

for what in train moe-layer; do
  if [ $what = train ]; then args=(--steps 5); key=tokens_per_s; else args=(--reps 5); key=fwdbwd_tokens_per_s; fi
  ratios=()
  for r in $(seq "$ROUNDS"); do
    one=$("$MOE" bench $what "${args[@]}" --threads 2 --json | last_json)
    two=$("${MPI[@]}" -np 2 "$MOE" bench $what "${args[@]}" --threads 1 --expert-parallel 2 --json | last_json)
    a=$(field "$one" $key); b=$(field "$two" $key)
    ratio=$(python3 -c "print($b / $a)")
    ratios+=("$ratio")
    echo "{\"bench\": \"$what\", \"round\": $r, \"one_process_2_threads\": $one, \"r2_1_thread\": $two, \"ratio\": $ratio}" >>"$OUT/results.jsonl"
    printf '%-10s round %d: one process 2 threads %8.0f tokens/s, R=2 x 1 thread %8.0f tokens/s, ratio %.3f\n' $what "$r" "$a" "$b" "$ratio"
  done
  python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f'$what: median ratio (R=2 x 1 thread over 1 process x 2 threads) {statistics.median(v):.3f}, range {min(v):.3f}-{max(v):.3f}')" "${ratios[@]}"
done

# Memory per rank.
CFG=configs/experiment/ep-memory.json
expert_params=$(python3 -c "import json; c=json.load(open('$CFG')); print(c['num_hidden_layers']*c['num_local_experts']*3*c['hidden_size']*c['intermediate_size'])")
one=$("$MOE" bench train --model-config $CFG --batch-size 8 --steps 2 --threads 2 --json | last_json)
rss1=$(field "$one" peak_rss_bytes)
printf 'memory: expert parameters %d (x 16 bytes: weights, gradients, 2 AdamW moments = %.1f MB)\n' "$expert_params" "$(python3 -c "print($expert_params*16/1e6)")"
printf '  R=1 (one process):  peak RSS %.1f MB\n' "$(python3 -c "print($rss1/1e6)")"
echo "{\"bench\": \"memory\", \"R\": 1, \"peak_rss_bytes\": [$rss1], \"expert_state_bytes_per_rank\": $((expert_params * 16))}" >>"$OUT/results.jsonl"
for R in 2 4; do
  j=$("${MPI[@]}" -np $R "$MOE" bench train --model-config $CFG --batch-size 8 --steps 2 --threads 1 --expert-parallel $R --json | last_json)
  rss=$(python3 -c "import json,sys; print(' '.join(f'{x/1e6:.1f}' for x in json.loads(sys.argv[1])['peak_rss_bytes_per_rank']))" "$j")
  printf '  R=%d: peak RSS per rank %s MB; expert state per rank %.1f MB\n' $R "$rss" "$(python3 -c "print($expert_params*16/$R/1e6)")"
  echo "{\"bench\": \"memory\", \"R\": $R, \"peak_rss_bytes\": $(python3 -c "import json,sys; print(json.loads(sys.argv[1])['peak_rss_bytes_per_rank'])" "$j"), \"expert_state_bytes_per_rank\": $((expert_params * 16 / R))}" >>"$OUT/results.jsonl"
done
