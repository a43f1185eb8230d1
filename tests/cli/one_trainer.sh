#!/usr/bin/env bash
# One trainer per directory: while a `moe train` runs, a second one on its --out (resuming it, or
# starting over with --overwrite) refuses with one error line naming the holder and touches
# nothing; `moe eval` meanwhile reads whole checkpoints while it saves every step; the lock goes
# with the process however it ends (here SIGKILL), and --resume then works.
source "$(dirname "$0")/lib/common.sh"
make_text "$WORK/text.txt"
CONF="$SRC/tests/cli/data/tiny-moe.json"
RUN=(--data "$WORK/text.txt" --batch-size 8 --context 32 --eval-every 0 --threads 1 --out "$WORK/run")
"$MOE" train --model-config "$CONF" "${RUN[@]}" --steps 1000000 --save-every 1 >/dev/null 2>"$WORK/first.err" &
first=$!
trap 'kill -9 $first 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 600); do [ -f "$WORK/run/model.safetensors" ] && break; sleep 0.1; done
[ -f "$WORK/run/model.safetensors" ] || { cat "$WORK/first.err"; fail "no first checkpoint"; }
expect_error "is in use by another moe train (pid $first)" "$MOE" train "${RUN[@]}" --resume --steps 3
expect_error "is in use by another moe train (pid $first)" "$MOE" train --model-config "$CONF" "${RUN[@]}" --overwrite --steps 3
kill -0 $first 2>/dev/null || { cat "$WORK/first.err"; fail "the first trainer died"; }
[ -s "$WORK/run/metrics.jsonl" ] || fail "the refused runs removed the first run's metrics"
# moe eval while the trainer saves every step: each reads one whole checkpoint, never fails.
for i in $(seq 15); do
  "$MOE" eval --model "$WORK/run" --data "$WORK/text.txt" --context 32 --threads 1 --json 2>"$WORK/eval.err" | tail -1 >"$WORK/eval.json" \
    || { cat "$WORK/eval.err"; fail "eval $i during saves"; }
  python3 -c 'import json,math,sys; j=json.load(open(sys.argv[1])); assert math.isfinite(j["loss"]) and j["tokens"] > 0, j' "$WORK/eval.json"
done
kill -9 $first
wait $first 2>/dev/null || true
step=$("$MOE" info --model "$WORK/run" --json | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])')
"$MOE" train "${RUN[@]}" --resume --steps $((step + 2)) >/dev/null 2>"$WORK/resume.err" || { cat "$WORK/resume.err"; fail "--resume after the kill"; }
echo "one trainer per directory: ok (a second trainer refused while pid $first ran; resumed from step $step after SIGKILL)"
