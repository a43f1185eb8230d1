#!/usr/bin/env bash
# Expert parallelism under mpirun (oversubscribed on this machine, loopback only): per-step losses
# at R = 2, R = 4 and the hybrid W = 4, R = 2 equal the single-process run's to 1e-5 relative
# (over the first 25 of 50 steps at least: see compare) for topk_softmax, switch (capacity), sigmoid_bias
# and expert_choice, and to the last bit with --exact-blocks; a run stopped at
# R = 2 and resumed at R = 4 continues the single-process run; checkpoints load at any R; bad
# layouts and a corrupt index give one clear error; a killed rank ends the job in bounded time.
source "$(dirname "$0")/lib/common.sh"
command -v mpirun >/dev/null || fail "mpirun not found (scripts/setup.sh installs openmpi-bin)"
# -q: mpirun's own banners off, so that a failing job shows moe's one error line.
MPI_LOUD=(mpirun --oversubscribe --allow-run-as-root --bind-to none --mca btl self,vader
          --mca oob_tcp_if_include lo)
MPI=("${MPI_LOUD[@]}" -q)
make_text "$WORK/text.txt"
COMMON=(--data "$WORK/text.txt" --steps 50 --batch-size 8 --context 32 --lr 1e-2 --eval-every 25 --seed 5 --threads 1)

# compare A B: every step's loss (and the validation losses) agree to 1e-5 relative over the first
# 25 steps, and to 1e-2 after. The default mode sums in another order per layout, so a near-tie
# in a routing decision may flip after many steps and the runs then follow close but different
# trajectories (seen at step 33 of expert_choice at R = 4 in the -O1 sanitizer build; loads do not
# show it there: each expert takes a fixed number of tokens). A broken exchange is off at once.
# --exact-blocks below gives the same losses to the last bit.
compare() {
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" "$3" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert [x["step"] for x in a] == [x["step"] for x in b], ("steps differ", len(a), len(b))
assert a[0].get("expert_tokens") == b[0].get("expert_tokens"), ("loads differ at step 1", sys.argv[3])
worst, apart = 0.0, None
for x, y in zip(a, b):
    for k in ("loss", "val_loss", "aux_loss", "dropped_fraction"):
        if k in x:
            if isinstance(x[k], list):  # per layer: compare the mean
                x[k], y[k] = sum(x[k]) / len(x[k]), sum(y[k]) / len(y[k])
            rel = abs(x[k] - y[k]) / max(abs(x[k]), 1e-12)
            if rel > 1e-5 and apart is None:
                apart = x["step"]
            if apart is None:
                worst = max(worst, rel)
            assert rel <= (1e-5 if x["step"] <= 25 else 1e-2), (sys.argv[3], x["step"], k, x[k], y[k], rel)
print(f"{sys.argv[3]}: {apart - 1 if apart else len(a)} steps within 1e-5 (worst {worst:.2e})"
      + (f"; a routing near-tie flipped at step {apart}, within 1e-2 after" if apart else ""))
PY
}

for cfg in ${ONLY_CFGS:-tiny-moe tiny-switch tiny-sigmoid tiny-expert-choice}; do
  conf="$SRC/tests/cli/data/$cfg.json"
  "$MOE" train --model-config "$conf" "${COMMON[@]}" --out "$WORK/$cfg.1" 2>/dev/null
  "${MPI[@]}" -np 2 "$MOE" train --model-config "$conf" "${COMMON[@]}" --expert-parallel 2 --out "$WORK/$cfg.r2" 2>"$WORK/err" \
    || { cat "$WORK/err"; fail "$cfg at R = 2"; }
  compare "$WORK/$cfg.1" "$WORK/$cfg.r2" "$cfg R=2"
  "${MPI[@]}" -np 4 "$MOE" train --model-config "$conf" "${COMMON[@]}" --expert-parallel 4 --out "$WORK/$cfg.r4" 2>/dev/null
  compare "$WORK/$cfg.1" "$WORK/$cfg.r4" "$cfg R=4"
  "${MPI[@]}" -np 4 "$MOE" train --model-config "$conf" "${COMMON[@]}" --expert-parallel 2 --out "$WORK/$cfg.w4r2" 2>/dev/null
  compare "$WORK/$cfg.1" "$WORK/$cfg.w4r2" "$cfg W=4 R=2"
done

# Layout-exact sums (--exact-blocks 4), every router: every step's losses are those of one process
# to the last bit (the loss itself is a double sum over ranks: up to 1e-15 apart), at every layout whose world
# size divides 4.
compare_exact() {
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" "$3" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 50, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    for k in ("loss", "val_loss"):
        if k in x:
            rel = abs(x[k] - y[k]) / abs(x[k])
            worst = max(worst, rel)
            assert rel <= 1e-14, (sys.argv[3], x["step"], k, x[k], y[k])
    assert x["expert_tokens"] == y["expert_tokens"], (sys.argv[3], "loads differ at step", x["step"])
print(f"{sys.argv[3]} exact: 50 steps, worst relative loss difference {worst:.1e}, identical loads")
PY
}
for cfg in tiny-moe tiny-switch tiny-sigmoid tiny-expert-choice; do
  conf="$SRC/tests/cli/data/$cfg.json"
  "$MOE" train --model-config "$conf" "${COMMON[@]}" --exact-blocks 4 --out "$WORK/$cfg.x1" 2>/dev/null
  for layout in "2 2" "4 2"; do
    set -- $layout
    "${MPI[@]}" -np "$1" "$MOE" train --model-config "$conf" "${COMMON[@]}" --exact-blocks 4 --expert-parallel "$2" \
      --out "$WORK/$cfg.xw$1r$2" 2>"$WORK/err" || { cat "$WORK/err"; fail "$cfg exact at W=$1 R=$2"; }
    compare_exact "$WORK/$cfg.x1" "$WORK/$cfg.xw$1r$2" "$cfg W=$1 R=$2"
  done
done
expect_error "not a multiple of the 2 ranks" "${MPI[@]}" -np 2 "$MOE" train --model-config "$conf" "${COMMON[@]}" --exact-blocks 1 --expert-parallel 2 --out "$WORK/bad5"
expect_error "does not divide --batch-size" "$MOE" train --model-config "$conf" "${COMMON[@]}" --exact-blocks 3 --out "$WORK/bad6"

# Only rank 0 writes metrics, with the communication figures.
python3 - "$WORK/tiny-moe.r2/metrics.jsonl" <<'PY'
import json, sys
m = json.loads(open(sys.argv[1]).readline())
assert m["world_size"] == 2 and m["expert_parallel"] == 2, m
assert len(m["bytes_sent"]) == 2 and all(b > 0 for b in m["bytes_sent"]), m
assert m["exchange_s"] > 0 and m["allreduce_s"] > 0, m
PY

# The sharded checkpoint: an index and one shard per expert shard; loads in one process and at R=4
# with the same loss.
[ -f "$WORK/tiny-moe.r2/model.safetensors.index.json" ] || fail "no index in the R=2 checkpoint"
[ "$(ls "$WORK/tiny-moe.r2"/model-*.safetensors | wc -l)" -eq 3 ] || fail "expected 3 shards at R=2"
l1=$("$MOE" eval --model "$WORK/tiny-moe.r2" --data "$WORK/text.txt" --json 2>/dev/null | tail -n 1)
l4=$("${MPI[@]}" -np 4 "$MOE" eval --model "$WORK/tiny-moe.r2" --data "$WORK/text.txt" --json --expert-parallel 4 2>/dev/null | tail -n 1)
l0=$("$MOE" eval --model "$WORK/tiny-moe.1" --data "$WORK/text.txt" --json 2>/dev/null | tail -n 1)
python3 - "$l0" "$l1" "$l4" <<'PY'
import json, sys
a, b, c = (json.loads(s)["loss"] for s in sys.argv[1:])
assert abs(a - b) / a < 1e-5 and abs(b - c) / b < 1e-6, (a, b, c)
PY
g1=$("$MOE" generate --model "$WORK/tiny-moe.r2" --prompt "the " --max-tokens 30 --seed 1 2>/dev/null)
g2=$("${MPI[@]}" -np 2 "$MOE" generate --model "$WORK/tiny-moe.r2" --prompt "the " --max-tokens 30 --seed 1 --expert-parallel 2 2>/dev/null)
[ "$g1" = "$g2" ] || fail "generation at R=2 differs from one process: '$g1' vs '$g2'"

# Stopped at step 20 with R = 2, resumed at R = 4: the single-process run's losses.
conf="$SRC/tests/cli/data/tiny-moe.json"
"${MPI[@]}" -np 2 "$MOE" train --model-config "$conf" "${COMMON[@]}" --expert-parallel 2 --stop-after 20 --out "$WORK/re" 2>/dev/null
"${MPI[@]}" -np 4 "$MOE" train --data "$WORK/text.txt" --resume --expert-parallel 4 --threads 1 --out "$WORK/re" 2>/dev/null
[ "$(ls "$WORK/re"/model-*.safetensors | wc -l)" -eq 5 ] || fail "expected 5 shards after resuming at R=4"
compare "$WORK/tiny-moe.1" "$WORK/re" "stopped at R=2, resumed at R=4"
# ... and back to one process.
"$MOE" train --data "$WORK/text.txt" --resume --steps 55 --threads 1 --out "$WORK/re" 2>/dev/null
[ -f "$WORK/re/model.safetensors" ] && [ ! -f "$WORK/re/model.safetensors.index.json" ] || fail "one process did not write one file"
ls "$WORK/re" | grep -q shard && fail "stale shards left behind"

# Bad layouts: one clear error line, non-zero exit, nothing written.
expect_error "does not divide the 2 ranks" "${MPI[@]}" -np 2 "$MOE" train --model-config "$conf" "${COMMON[@]}" --expert-parallel 3 --out "$WORK/bad1"
expect_error "pass --expert-parallel" "${MPI[@]}" -np 2 "$MOE" train --model-config "$conf" "${COMMON[@]}" --out "$WORK/bad2"
expect_error "needs 2 ranks" "$MOE" train --model-config "$conf" "${COMMON[@]}" --expert-parallel 2 --out "$WORK/bad3"
expect_error "does not divide the 4 experts" "${MPI[@]}" -np 3 "$MOE" train --model-config "$conf" "${COMMON[@]}" --expert-parallel 3 --out "$WORK/bad4"
for d in bad1 bad2 bad3 bad4 bad5 bad6; do [ ! -e "$WORK/$d/model.safetensors" ] || fail "$d wrote a checkpoint"; done
# A shard that disagrees with the index.
cp -r "$WORK/tiny-moe.r2" "$WORK/corrupt"
python3 - "$WORK/corrupt/model.safetensors.index.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
k = next(n for n in j["weight_map"] if ".experts.3." in n)
j["weight_map"][k] = next(f for f in set(j["weight_map"].values()) if f.endswith("00002-of-00003.safetensors"))
json.dump(j, open(sys.argv[1], "w"))
PY
expect_error "but that shard has no such tensor" "${MPI[@]}" -np 2 "$MOE" eval --model "$WORK/corrupt" --data "$WORK/text.txt" --expert-parallel 2

# SIGINT to the job: mpirun passes it to the ranks, which agree to stop after the step they are in
# and save it; --resume continues from there.
"${MPI_LOUD[@]}" -np 2 "$MOE" train --model-config "$conf" --data "$WORK/text.txt" --steps 1000000 --batch-size 8 --context 32 \
  --eval-every 0 --save-every 1000000 --threads 1 --expert-parallel 2 --out "$WORK/int" 2>"$WORK/int.err" &
job=$!
for _ in $(seq 100); do [ -s "$WORK/int/metrics.jsonl" ] && break; sleep 0.2; done
kill -INT $job
timeout 60 tail --pid=$job -f /dev/null || true
wait $job || true
grep -q "continue with --resume" "$WORK/int.err" || { cat "$WORK/int.err"; fail "no checkpoint after SIGINT"; }
[ "$(grep -c "interrupted:" "$WORK/int.err")" -eq 1 ] || fail "more than one rank reported the interruption"
step=$("$MOE" info --model "$WORK/int" --json | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])')
[ "$step" -gt 0 ] || fail "no step in the interrupted checkpoint"
"${MPI[@]}" -np 2 "$MOE" train --data "$WORK/text.txt" --out "$WORK/int" --resume --steps $((step + 5)) --expert-parallel 2 --threads 1 2>/dev/null
python3 - "$WORK/int/metrics.jsonl" "$((step + 5))" <<'PY'
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1])]
assert steps == list(range(1, int(sys.argv[2]) + 1)), (steps[:3], steps[-3:], len(steps))
PY

# A rank killed mid-run: the job ends non-zero well within 60 s, naming the lost rank, and the
# last checkpoint still loads.
"${MPI_LOUD[@]}" -np 2 "$MOE" train --model-config "$conf" --data "$WORK/text.txt" --steps 1000000 --batch-size 8 --context 32 \
  --eval-every 0 --save-every 20 --threads 1 --expert-parallel 2 --out "$WORK/kill" 2>"$WORK/kill.err" &
job=$!
for _ in $(seq 100); do [ -f "$WORK/kill/model.safetensors.index.json" ] && break; sleep 0.2; done
[ -f "$WORK/kill/model.safetensors.index.json" ] || { kill $job; fail "no checkpoint before the kill"; }
victim=$(pgrep -f "moe train .*--out $WORK/kill" | grep -v "^$job\$" | tail -n 1)
killed_at=$(date +%s)
kill -9 "$victim"
timeout 60 tail --pid=$job -f /dev/null || true
rc=0
wait $job || rc=$?
elapsed=$(( $(date +%s) - killed_at ))
[ $rc -ne 0 ] || fail "the job exited 0 after a rank was killed"
[ $elapsed -lt 60 ] || fail "the job took $elapsed s to end after a rank was killed"
grep -q "process rank [0-9]" "$WORK/kill.err" || { cat "$WORK/kill.err"; fail "no message naming the lost rank"; }
"$MOE" eval --model "$WORK/kill" --data "$WORK/text.txt" --json >/dev/null 2>&1 || fail "the last checkpoint does not load"
echo "distributed CLI test passed (rank killed, job ended after ${elapsed} s)"
