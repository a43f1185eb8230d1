#!/usr/bin/env bash
# Edge sizes through the CLI: empty, 1-byte and shorter-than-the-context data for train and eval,
# a context beyond max_position_embeddings, and generation far past the window. Each refusal is
# one clear line on stderr, before any other output; what can be done is done.
source "$(dirname "$0")/lib/common.sh"
CONF="$SRC/tests/cli/data/tiny-moe.json"  # max_position_embeddings 32
make_text "$WORK/text.txt"
: >"$WORK/empty.txt"
printf 'a' >"$WORK/one.txt"
printf 'twenty bytes of text' >"$WORK/short.txt"
TRAIN=(train --model-config "$CONF" --steps 2 --batch-size 2 --eval-every 0 --threads 1)

# train: no sequence of 32 + 1 bytes to sample; nothing written but the lock.
for f in empty one short; do
  expect_error "the training split has .* a context of 32 needs at least 33" "$MOE" "${TRAIN[@]}" --data "$WORK/$f.txt" --out "$WORK/o-$f"
  [ ! -e "$WORK/o-$f/model.safetensors" ] || fail "train on $f.txt wrote a checkpoint"
done
expect_error "training split has 1 byte;" "$MOE" "${TRAIN[@]}" --data "$WORK/one.txt" --out "$WORK/o-one"
# A shorter context fits the short corpus.
"$MOE" "${TRAIN[@]}" --data "$WORK/short.txt" --context 8 --out "$WORK/o-short8" >/dev/null 2>&1 \
  || fail "train with --context 8 on a 20-byte corpus"
expect_error "exceeds the model's max_position_embeddings (32)" "$MOE" "${TRAIN[@]}" --data "$WORK/text.txt" --context 33 --out "$WORK/o-long"

"$MOE" "${TRAIN[@]}" --data "$WORK/text.txt" --out "$WORK/m" >/dev/null 2>&1 || fail "training the model"
# eval: nothing to predict in 0 or 1 bytes; a file shorter than the context is one short window.
expect_error "needs at least 2 bytes to predict anything, has 0" "$MOE" eval --model "$WORK/m" --data "$WORK/empty.txt"
expect_error "needs at least 2 bytes to predict anything, has 1" "$MOE" eval --model "$WORK/m" --data "$WORK/one.txt"
printf 'ab' >"$WORK/two.txt"
for f in two short; do
  "$MOE" eval --model "$WORK/m" --data "$WORK/$f.txt" --json 2>/dev/null | tail -1 >"$WORK/$f.json"
done
python3 - "$WORK/two.json" "$WORK/short.json" <<'PY'
import json, math, sys
two, short = (json.load(open(p)) for p in sys.argv[1:])
assert two["tokens"] == 1 and short["tokens"] == 19, (two, short)
assert all(math.isfinite(j["loss"]) and j["loss"] > 0 for j in (two, short)), (two, short)
PY
expect_error "exceeds the model's max_position_embeddings (32)" "$MOE" eval --model "$WORK/m" --data "$WORK/text.txt" --context 64

# generate: 200 bytes through a 32-position window (the KV cache is rebuilt several times); greedy
# is deterministic, and the prompt is echoed first. Token-level agreement with a fresh forward is
# the unit test Generator.GreedyPastTheWindowMatchesFreshFullForwards.
a=$("$MOE" generate --model "$WORK/m" --prompt "the quick" --max-tokens 200 --temperature 0 2>/dev/null)
b=$("$MOE" generate --model "$WORK/m" --prompt "the quick" --max-tokens 200 --temperature 0 2>/dev/null)
[ "$a" = "$b" ] || fail "greedy generation past the window is not deterministic"
[ "${a:0:9}" = "the quick" ] || fail "the prompt is not echoed: '${a:0:20}'"
[ "$(printf '%s' "$a" | wc -c)" -ge 209 ] || fail "generation past the window stopped early: ${#a} bytes"
# An empty prompt starts at a line break; zero tokens print the prompt alone.
"$MOE" generate --model "$WORK/m" --prompt "" --max-tokens 40 --temperature 0 >/dev/null 2>&1 || fail "empty prompt"
z=$("$MOE" generate --model "$WORK/m" --prompt "xyz" --max-tokens 0 2>/dev/null)
[ "$z" = "xyz" ] || fail "--max-tokens 0 printed '$z'"
echo "edge sizes CLI: ok"
