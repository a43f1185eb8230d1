#!/usr/bin/env bash
# How long a long prompt holds up the requests already decoding (not part of the test suite). For
# each --prefill-chunk value, a fresh `moe serve` on loopback: STREAMS streaming completions decode
# MAX_TOKENS tokens each; once each has 20 tokens, one request with a PROMPT-token prompt joins
# (max_tokens 1). Printed per chunk value: the running streams' median gap between text events
# before the long prompt arrives, each stream's longest gap while it is prefilled (and their
# median), and how long the long request took (its time to first token). A gap is between two
# events the client receives: a token that ends inside a UTF-8 character sends nothing until the
# character is whole, so one stream can show two steps as one gap (a random-weight byte model
# samples such bytes often); the median over the streams is the figure to read. The model needs no
# tokenizer file (bytes are tokens); with a tokenizer the prompt's token count differs from PROMPT.
#
# Usage: bash scripts/prefill_stall_bench.sh --model DIR [--chunks "0 128 512"] [--prompt 900]
#          [--streams 4] [--max-tokens 200] [--threads 0]
#   MOE=path/to/moe (default build/tools/moe/moe).
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
source scripts/lib/args.sh  # die, usage, unknown_argument, positive_integers, need_moe
MODEL="" CHUNKS="0 128 512" PROMPT=900 STREAMS=4 MAX_TOKENS=200 THREADS=0
while [ $# -gt 0 ]; do
  case $1 in
    --model) MODEL=$2; shift 2 ;;
    --chunks) CHUNKS=$2; shift 2 ;;
    --prompt) PROMPT=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --max-tokens) MAX_TOKENS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    -h|--help) usage ;;
    *) unknown_argument "$1" ;;
  esac
done
[ -n "$MODEL" ] || die "--model DIR is required"
positive_integers "--prompt, --streams, --max-tokens" "$PROMPT" "$STREAMS" "$MAX_TOKENS"
for c in $CHUNKS; do [[ $c =~ ^[0-9]+$ ]] || die "--chunks holds non-negative integers, got '$c'"; done
need_moe
[ -f "$MODEL/config.json" ] || die "no $MODEL/config.json"
source scripts/lib/loopback_server.sh  # WORK, start_server, stop_server, the server killed at exit

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; model $MODEL; $STREAMS streams of $MAX_TOKENS tokens," \
     "then a $PROMPT-token prompt joins"
echo "| --prefill-chunk | gap between events before (median) | each stream's longest gap while the prompt is prefilled (median) | the long request's time to first token |"
echo "|---|---|---|---|"
for chunk in $CHUNKS; do
  start_server "$MODEL" --threads "$THREADS" --max-batch $((STREAMS + 1)) --prefill-chunk "$chunk"
  python3 - "$PORT" "$STREAMS" "$MAX_TOKENS" "$PROMPT" "$chunk" <<'PY'
import http.client, json, statistics, sys, threading, time
port, streams, max_tokens, prompt_len, chunk = (int(x) for x in sys.argv[1:6])
arrivals = [[] for _ in range(streams)]
ready = threading.Barrier(streams + 1)

def stream(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"prompt": f"Stream {i} once upon a time", "max_tokens": max_tokens, "temperature": 0,
                       "stream": True})
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read().decode())
    told = False
    for line in r:
        line = line.decode().rstrip("\n")
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        if json.loads(line[6:]).get("choices"):
            arrivals[i].append(time.monotonic())
            if len(arrivals[i]) == 20 and not told:
                told = True
                ready.wait()
    c.close()

threads = [threading.Thread(target=stream, args=(i,)) for i in range(streams)]
for t in threads:
    t.start()
ready.wait()
words = "the quick brown fox jumps over a lazy dog ".encode()
prompt = (words * (prompt_len // len(words) + 1))[:prompt_len].decode()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
t0 = time.monotonic()
c.request("POST", "/v1/completions", body=json.dumps({"prompt": prompt, "max_tokens": 1, "temperature": 0}),
          headers={"Content-Type": "application/json"})
r = c.getresponse()
assert r.status == 200, (r.status, r.read().decode())
usage = json.loads(r.read().decode())["usage"]
t1 = time.monotonic()
c.close()
for t in threads:
    t.join()
before = [b - a for s in arrivals for a, b in zip(s, s[1:]) if b <= t0]
longest = [max(b - a for a, b in zip(s, s[1:]) if b > t0 and a < t1) for s in arrivals]
assert usage["prompt_tokens"] == prompt_len, usage
print(f"| {chunk} | {statistics.median(before) * 1e3:.1f} ms | " + " / ".join(f"{x * 1e3:.0f}" for x in longest) +
      f" ms ({statistics.median(longest) * 1e3:.0f} ms) | {(t1 - t0) * 1e3:.0f} ms |")
PY
  stop_server
done
