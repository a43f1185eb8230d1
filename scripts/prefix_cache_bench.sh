#!/usr/bin/env bash
# What the prefix cache saves a chat (not part of the test suite): one conversation of TURNS turns
# with a long system prompt, sent to `moe serve` over loopback twice in one run, once with the
# default prefix cache and once with --prefix-cache-mb 0. Each turn resends the conversation so far
# (as OpenAI clients do), streamed, greedy, MAX_TOKENS tokens. Per turn it prints the prompt tokens,
# how many of them each server computed (from /metrics: moe_prefill_tokens_total), and the time to
# first token on the client (sending the request -> first chunk with text) of both, and their ratio.
# The replies are the same text both ways unless float rounding flips a near-tie (then it says so).
#
# Usage: bash scripts/prefix_cache_bench.sh --model DIR [--turns 4] [--system-words 120]
#          [--max-tokens 32] [--context N] [--threads 0]
#   MOE=path/to/moe (default build/tools/moe/moe). The servers read a copy of DIR (its files linked):
#   without a chat template (tokenizer_config.json) it gets OLMoE's from tests/data/chat_templates;
#   with --context N its config.json says max_position_embeddings N (a random-weight model's
#   rotary embeddings work at any position).
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
source scripts/lib/args.sh  # die, usage, unknown_argument, positive_integers, need_moe
MODEL="" TURNS=4 WORDS=120 MAX_TOKENS=32 THREADS=0 CONTEXT=""
while [ $# -gt 0 ]; do
  case $1 in
    --model) MODEL=$2; shift 2 ;;
    --turns) TURNS=$2; shift 2 ;;
    --system-words) WORDS=$2; shift 2 ;;
    --max-tokens) MAX_TOKENS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --context) CONTEXT=$2; shift 2 ;;
    -h|--help) usage ;;
    *) unknown_argument "$1" ;;
  esac
done
[ -n "$MODEL" ] || die "--model DIR is required"
positive_integers "--turns, --system-words, --max-tokens" "$TURNS" "$WORDS" "$MAX_TOKENS"
need_moe

source scripts/lib/loopback_server.sh  # WORK, start_server, stop_server, the server killed at exit
[ -f "$MODEL/config.json" ] || die "no $MODEL/config.json"
mkdir "$WORK/model"
for f in "$MODEL"/*; do ln -s "$(realpath "$f")" "$WORK/model/"; done
[ -f "$MODEL/tokenizer_config.json" ] || cp tests/data/chat_templates/olmoe/tokenizer_config.json "$WORK/model/"
if [ -n "$CONTEXT" ]; then
  positive_integers "--context" "$CONTEXT"
  rm "$WORK/model/config.json"
  python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); c["max_position_embeddings"] = int(sys.argv[3]); json.dump(c, open(sys.argv[2], "w"))' \
    "$MODEL/config.json" "$WORK/model/config.json" "$CONTEXT"
fi
MODEL_NAME=$MODEL
MODEL=$WORK/model

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; model $MODEL_NAME${CONTEXT:+ (context $CONTEXT)}; $TURNS turns," \
     "a system prompt of $WORDS words, $MAX_TOKENS tokens per reply"
run() {  # run OUT SERVER-ARGS...: one conversation against a fresh server
  local out=$1
  shift
  start_server "$MODEL" --threads "$THREADS" "$@"
  python3 - "$PORT" "$TURNS" "$WORDS" "$MAX_TOKENS" "$out" <<'PY'
import http.client, json, random, sys, time
port, turns, words, max_tokens, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = random.Random(1)
vocab = "the quick brown fox jumps over a lazy dog while five boxing wizards jump quickly once upon time".split()
system = " ".join(rng.choice(vocab) for _ in range(words))

def metric(name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return float([l for l in text.splitlines() if l.startswith(name + " ")][0].split()[1])

msgs = [{"role": "system", "content": system}]
rows = []
for t in range(turns):
    msgs.append({"role": "user", "content": f"Question {t + 1}: " + " ".join(rng.choice(vocab) for _ in range(12))})
    computed = metric("moe_prefill_tokens_total")
    body = json.dumps({"messages": msgs, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.monotonic()
    c.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read().decode())
    ttft, reply, usage = None, "", None
    for line in r:
        line = line.decode().rstrip("\n")
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            usage = chunk["usage"]
        for ch in chunk.get("choices", []):
            text = ch.get("delta", {}).get("content", "")
            if text and ttft is None:
                ttft = time.monotonic() - t0
            reply += text
    c.close()
    rows.append({"prompt": usage["prompt_tokens"], "computed": metric("moe_prefill_tokens_total") - computed,
                 "ttft": ttft, "reply": reply})
    msgs.append({"role": "assistant", "content": reply})
json.dump(rows, open(out, "w"))
PY
  stop_server
}
run "$WORK/cached.json"
run "$WORK/plain.json" --prefix-cache-mb 0
python3 - "$WORK/cached.json" "$WORK/plain.json" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print("| turn | prompt tokens | computed: cache / none | time to first token: cache / none | ratio |")
print("|---|---|---|---|---|")
for i, (x, y) in enumerate(zip(a, b)):
    print(f"| {i + 1} | {x['prompt']} | {x['computed']:.0f} / {y['computed']:.0f} | "
          f"{x['ttft'] * 1e3:.1f} ms / {y['ttft'] * 1e3:.1f} ms | {y['ttft'] / x['ttft']:.2f}x |")
same = sum(x["reply"] == y["reply"] for x, y in zip(a, b))
print(f"replies identical with and without the cache: {same} of {len(a)}")
PY
