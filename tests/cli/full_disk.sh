#!/usr/bin/env bash
# A save onto a full filesystem (a 1 MiB tmpfs this test mounts: room for one checkpoint of the
# tiny model, not for the next one beside it): one clear error line, the previous checkpoint
# intact (it loads, evaluates and resumes), no temporary file left. Needs root to mount; exits 77
# (skipped) without it.
source "$(dirname "$0")/lib/common.sh"
MNT="$WORK/small"
mkdir -p "$MNT"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=1m moe-test "$MNT" 2>/dev/null; then
  echo "skipped: mounting a tmpfs needs root"
  exit 77
fi
trap 'umount "$MNT" 2>/dev/null || true; rm -rf "$WORK"' EXIT
make_text "$WORK/text.txt"
rc=0
"$MOE" train --model-config "$SRC/tests/cli/data/tiny-moe.json" --data "$WORK/text.txt" --out "$MNT/run" \
  --steps 5 --batch-size 2 --eval-every 0 --save-every 1 --threads 1 >"$WORK/out" 2>"$WORK/err" || rc=$?
[ $rc -ne 0 ] || fail "training onto a full disk exited 0"
[ "$(grep -c "error" "$WORK/err")" -eq 1 ] || { cat "$WORK/err"; fail "expected one error line"; }
grep -q "^moe: error: .*No space left on device" "$WORK/err" || { cat "$WORK/err"; fail "the error does not say the disk is full"; }
echo "full disk: $(grep error "$WORK/err")"
! ls "$MNT/run" | grep -q "\.tmp" || { ls -la "$MNT/run"; fail "a temporary file was left behind"; }
step=$("$MOE" info --model "$MNT/run" --json | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])')
[ "$step" = 1 ] || fail "the checkpoint left is at step '$step', expected 1"
"$MOE" eval --model "$MNT/run" --data "$WORK/text.txt" --json >/dev/null 2>&1 || fail "the previous checkpoint does not evaluate"
# Moved to a disk with room, it resumes.
cp -r "$MNT/run" "$WORK/run"
"$MOE" train --data "$WORK/text.txt" --out "$WORK/run" --resume --steps 3 >/dev/null 2>&1 || fail "resuming the previous checkpoint"
step=$("$MOE" info --model "$WORK/run" --json | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])')
[ "$step" = 3 ] || fail "resumed to step '$step', expected 3"
echo "full disk CLI: ok"
