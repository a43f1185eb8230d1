#!/usr/bin/env bash
# Bad flags, missing files and invalid configs: one clear line on stderr and a non-zero exit.
source "$(dirname "$0")/lib/common.sh"
make_text "$WORK/text.txt"

expect_error() {  # expect_error PATTERN -- command...
  local pattern=$1; shift 2
  local rc=0
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ $rc -ne 0 ] || fail "exit 0 for: $*"
  local lines
  lines=$(wc -l <"$WORK/err")
  [ "$lines" -eq 1 ] || { cat "$WORK/err" >&2; fail "expected one line on stderr, got $lines for: $*"; }
  grep -q -- "$pattern" "$WORK/err" || { cat "$WORK/err" >&2; fail "stderr lacks '$pattern' for: $*"; }
  echo "ok ($rc): $(cat "$WORK/err")"
}

expect_error "subcommand" -- "$MOE"
expect_error "frobnicate" -- "$MOE" frobnicate
expect_error "steps" -- "$MOE" train --out "$WORK/o" --steps abc
expect_error "steps" -- "$MOE" train --out "$WORK/o" --steps -3
# A value out of a positive or non-negative option's range says so in words (not as a numeric range).
expect_error "steps: must be positive, got -3" -- "$MOE" train --out "$WORK/o" --steps -3
expect_error "steps: 'abc' is not a number" -- "$MOE" train --out "$WORK/o" --steps abc
expect_error "temperature: must be zero or more, got -1" -- "$MOE" generate --model "$WORK/o" --temperature -1
expect_error "lr" -- "$MOE" train --out "$WORK/o" --lr 0
expect_error "min-lr-ratio" -- "$MOE" train --out "$WORK/o" --min-lr-ratio 2
expect_error "out" -- "$MOE" train --steps 3
expect_error "nonexistent" -- "$MOE" train --out "$WORK/o" --data "$WORK/nonexistent"
expect_error "config.json" -- "$MOE" train --out "$WORK/o" --model-config "$WORK/config.json"
echo '{"model_type": "mixtral", "hidden_size": ' >"$WORK/bad.json"
expect_error "bad.json" -- "$MOE" train --out "$WORK/o" --data "$WORK/text.txt" --model-config "$WORK/bad.json"
sed 's/"num_experts_per_tok": 2/"num_experts_per_tok": 9/' "$SRC/tests/cli/data/tiny-moe.json" >"$WORK/k9.json"
expect_error "num_experts_per_tok" -- "$MOE" train --out "$WORK/o" --data "$WORK/text.txt" --model-config "$WORK/k9.json"
sed 's/"hidden_size": 32/"hidden_size": "big"/' "$SRC/tests/cli/data/tiny-moe.json" >"$WORK/str.json"
expect_error "hidden_size" -- "$MOE" train --out "$WORK/o" --data "$WORK/text.txt" --model-config "$WORK/str.json"
sed 's/"vocab_size": 256/"vocab_size": 32000/' "$SRC/tests/cli/data/tiny-moe.json" >"$WORK/vocab.json"
expect_error "so it needs vocab_size 256" -- "$MOE" train --out "$WORK/o" --data "$WORK/text.txt" --model-config "$WORK/vocab.json"
expect_error "not a directory" -- "$MOE" eval --model "$WORK/nomodel" --data "$WORK/text.txt"
expect_error "nope.txt" -- "$MOE" eval --model "$WORK" --data "$WORK/nope.txt"
expect_error "prompt" -- "$MOE" generate --model "$WORK"
expect_error "resume" -- "$MOE" train --out "$WORK/empty" --data "$WORK/text.txt" --resume

# A real checkpoint, then corrupted copies of it.
"$MOE" train --model-config "$SRC/tests/cli/data/tiny-moe.json" --data "$WORK/text.txt" --out "$WORK/m" --steps 2 --batch-size 2 --eval-every 0 2>/dev/null >/dev/null
expect_error "already holds a checkpoint" -- "$MOE" train --out "$WORK/m" --data "$WORK/text.txt" --steps 2
cp -r "$WORK/m" "$WORK/trunc"
truncate -s -64 "$WORK/trunc/model.safetensors"
expect_error "model.safetensors" -- "$MOE" eval --model "$WORK/trunc" --data "$WORK/text.txt"
cp -r "$WORK/m" "$WORK/garbage"
head -c 5000 /dev/urandom >"$WORK/garbage/model.safetensors"
expect_error "model.safetensors" -- "$MOE" info --model "$WORK/garbage"
cp -r "$WORK/m" "$WORK/lies"
# Header that lies: claim a larger shape for the first tensor.
python3 - "$WORK/lies/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
name = sorted(k for k in h if k != "__metadata__")[0]
h[name]["shape"] = [h[name]["shape"][0] * 2] + h[name]["shape"][1:]
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(p, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
print(name)
PY
expect_error "safetensors" -- "$MOE" generate --model "$WORK/lies" --prompt hi
cp -r "$WORK/m" "$WORK/nocfg"
rm "$WORK/nocfg/config.json"
expect_error "config.json" -- "$MOE" info --model "$WORK/nocfg"
echo "all bad-input cases gave one clear line"
