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
MODEL="" CHUNKS="0 128 512" PROMPT=900 STREAMS=4 MAX_TOKENS=200 THREADS=0
while [ $# -gt 0 ]; do
  case $1 in
    --model) MODEL=$2; shift 2 ;;
    --chunks) CHUNKS=$2; shift 2 ;;
    --prompt) PROMPT=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --max-tokens) MAX_TOKENS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "prefill_stall_bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$MODEL" ] || { echo "prefill_stall_bench.sh: --model DIR is required" >&2; exit 2; }
for v in "$PROMPT" "$STREAMS" "$MAX_TOKENS"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "prefill_stall_bench.sh: --prompt, --streams, --max-tokens must be positive integers" >&2; exit 2; }
done
for c in $CHUNKS; do
  [[ $c =~ ^[0-9]+$ ]] || { echo "prefill_stall_bench.sh: --chunks holds non-negative integers, got '$c'" >&2; exit 2; }
done
[ -x "$MOE" ] || { echo "prefill_stall_bench.sh: no moe binary at $MOE (set MOE=...)" >&2; exit 2; }
[ -f "$MODEL/config.json" ] || { echo "prefill_stall_bench.sh: no $MODEL/config.json" >&2; exit 2; }
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
