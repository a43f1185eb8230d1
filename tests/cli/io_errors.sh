#!/usr/bin/env bash
# A failing write and a failing fsync during a save (injected with LD_PRELOAD, tests/cli/fault/):
# one clear error line naming the file and the system's reason, the previous checkpoint intact
# (it loads at its step and resumes), no temporary file left. $3 is the fault library.
source "$(dirname "$0")/lib/common.sh"
FAULTS=$3
[ -f "$FAULTS" ] || fail "no fault library at '$FAULTS'"
make_text "$WORK/text.txt"
TRAIN=(train --model-config "$SRC/tests/cli/data/tiny-moe.json" --data "$WORK/text.txt" --steps 4 --batch-size 2
       --eval-every 0 --save-every 1 --threads 1)
step_of() { "$MOE" info --model "$1" --json | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])'; }

# inject NAME CALL MATCH SKIP EXPECTED_STEP PATTERN
inject() {
  local name=$1 call=$2 match=$3 skip=$4 want=$5 pattern=$6 rc
  rc=0
  # verify_asan_link_order=0: under AddressSanitizer the preloaded library comes before its runtime.
  LD_PRELOAD="$FAULTS" MOE_FAULT_CALL=$call MOE_FAULT_MATCH=$match MOE_FAULT_SKIP=$skip \
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
    "$MOE" "${TRAIN[@]}" --out "$WORK/$name" >/dev/null 2>"$WORK/$name.err" || rc=$?
  [ $rc -ne 0 ] || fail "$name: training exited 0"
  [ "$(grep -c "error" "$WORK/$name.err")" -eq 1 ] || { cat "$WORK/$name.err"; fail "$name: expected one error line"; }
  grep -q "^moe: error: .*$pattern" "$WORK/$name.err" || { cat "$WORK/$name.err"; fail "$name: the error lacks '$pattern'"; }
  echo "$name: $(grep error "$WORK/$name.err")"
  ! ls -a "$WORK/$name" | grep -q "\.tmp" || { ls -la "$WORK/$name"; fail "$name: a temporary file was left"; }
  [ "$(step_of "$WORK/$name")" = "$want" ] || fail "$name: the checkpoint left is not step $want"
  "$MOE" train --data "$WORK/text.txt" --out "$WORK/$name" --resume --steps 4 >/dev/null 2>&1 || fail "$name: --resume"
  [ "$(step_of "$WORK/$name")" = 4 ] || fail "$name: did not resume to step 4"
}
inject write-state write trainer_state-2 0 1 "trainer_state-2.safetensors: write failed: Input/output error"
inject fsync-state fsync trainer_state-3 0 2 "trainer_state-3.safetensors: fsync failed: Input/output error"
# The model file of the second save (one fsync per save of it).
inject fsync-model fsync model.safetensors.tmp 1 1 "model.safetensors: fsync failed: Input/output error"
echo "I/O errors CLI: ok"
