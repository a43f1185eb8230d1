#!/usr/bin/env bash
# An independent PyTorch implementation of the Mixtral architecture (tests/reference) agrees with
# `moe eval` to a relative 1e-4 on (a) a checkpoint trained by `moe train`, MoE and dense, and
# (b) checkpoints written by PyTorch in bf16 (two shards) and f16.
source "$(dirname "$0")/lib/common.sh"
REF="/usr/bin/python3 $SRC/tests/reference/mixtral_reference.py"
make_text "$WORK/text.txt"
head -c 2500 "$WORK/text.txt" >"$WORK/eval.txt"

compare() {  # compare MODEL_DIR [--context N]
  local dir=$1; shift
  "$MOE" eval --model "$dir" --data "$WORK/eval.txt" --json "$@" | tail -n 1 >"$WORK/ours.json"
  $REF eval --model "$dir" --data "$WORK/eval.txt" "$@" | tail -n 1 >"$WORK/ref.json"
  python3 - "$WORK/ours.json" "$WORK/ref.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert a["tokens"] == b["tokens"], (a, b)
rel = abs(a["loss"] - b["loss"]) / abs(b["loss"])
print(f"moe {a['loss']:.7f} reference {b['loss']:.7f} relative difference {rel:.2e}")
assert rel < 1e-4, rel
PY
}

"$MOE" train --model-config "$SRC/tests/cli/data/tiny-moe.json" --data "$WORK/text.txt" --out "$WORK/moe" \
  --steps 30 --batch-size 8 --lr 1e-2 --eval-every 0 2>/dev/null
compare "$WORK/moe"
compare "$WORK/moe" --context 20
"$MOE" train --model-config "$SRC/tests/cli/data/tiny-dense.json" --data "$WORK/text.txt" --out "$WORK/dense" \
  --steps 10 --batch-size 8 --eval-every 0 2>/dev/null
compare "$WORK/dense"
$REF make-checkpoint --out "$WORK/bf16" --config "$SRC/tests/cli/data/tiny-moe.json" --seed 1 --dtype bf16 --shards 2
[ -f "$WORK/bf16/model.safetensors.index.json" ] || fail "reference wrote no shard index"
compare "$WORK/bf16"
$REF make-checkpoint --out "$WORK/f16" --config "$SRC/tests/cli/data/tiny-moe.json" --seed 2 --dtype f16
compare "$WORK/f16"
# Qwen2-MoE: softmax top-k without renormalisation, a sigmoid-gated shared expert, q/k/v biases and
# a dense layer (mlp_only_layers), with Qwen2-MoE's key and tensor names; trained here and written
# by the reference.
"$MOE" train --model-config "$SRC/tests/cli/data/tiny-qwen2-moe.json" --data "$WORK/text.txt" --out "$WORK/qwen" \
  --steps 10 --batch-size 8 --eval-every 0 2>/dev/null
compare "$WORK/qwen"
$REF make-checkpoint --out "$WORK/qwen-ref" --config "$SRC/tests/cli/data/tiny-qwen2-moe.json" --seed 3 --dtype bf16 --shards 3
compare "$WORK/qwen-ref"
"$MOE" generate --model "$WORK/bf16" --prompt "abc" --max-tokens 10 >/dev/null 2>&1 || fail "generate on a bf16 sharded checkpoint"
echo "reference agreement passed"
