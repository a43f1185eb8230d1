#!/usr/bin/env bash
# Soak test of `moe serve` (not part of the test suite): starts the server on 127.0.0.1 (a free
# port) with --max-batch 16 --max-queue 64, then CLIENTS concurrent clients (python3 threads and
# http.client, no pip packages) each loop for DURATION seconds: a streamed /v1/completions with a
# random prompt and a random max_tokens. It counts failed requests (status not 200, malformed SSE:
# a line that is neither "data: <JSON chunk>", an SSE comment (": ...") nor empty, no "data: [DONE]"
# at the end, a dropped connection or a 60 s stall), records each request's time to first token on
# the client side (from sending the request to the first chunk with text: the server sends a first
# chunk at once, possibly empty), and samples the server's resident memory
# (moe_resident_memory_bytes from /metrics) every 10 s.
# At the end it prints: requests completed, failed, p50/p99 TTFT, RSS after warm-up (the first
# sample at or after 30 s) and at the end, their ratio; it exits 1 if any request failed or the RSS
# grew more than 10% after warm-up. --duration is at least 60 s.
#
# Usage: bash scripts/serve_soak.sh [--model DIR] [--clients N] [--duration S] [--threads T]
#   MOE=path/to/moe (default build/tools/moe/moe). Without --model it writes a tiny random byte-level
#   model with the reference (tests/reference/mixtral_reference.py, tests/cli/data/tiny-moe.json with
#   a context of 512), as tests/cli/serve.sh does. Defaults: 64 clients, 300 s.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
source scripts/lib/args.sh  # die, usage, unknown_argument, positive_integers, need_moe
MODEL="" CLIENTS=64 DURATION=300 THREADS=0
while [ $# -gt 0 ]; do
  case $1 in
    --model) MODEL=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    -h|--help) usage ;;
    *) unknown_argument "$1" ;;
  esac
done
positive_integers "--clients and --duration (seconds)" "$CLIENTS" "$DURATION"
# The RSS check compares the first sample after the 30 s warm-up with the last: a shorter run has
# nothing to compare (it once compared with the sample taken before the first request, and failed).
[ "$DURATION" -ge 60 ] || die "--duration must be at least 60 s (the RSS is compared after a 30 s warm-up), got $DURATION"
MAX_BATCH=16 MAX_QUEUE=64
if [ $((MAX_BATCH + MAX_QUEUE)) -lt "$CLIENTS" ]; then MAX_QUEUE=$((CLIENTS - MAX_BATCH)); fi  # all admitted, no 429
need_moe

source scripts/lib/loopback_server.sh  # WORK, start_server, the server killed at exit
if [ -z "$MODEL" ]; then
  python3 - tests/cli/data/tiny-moe.json "$WORK/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["max_position_embeddings"] = 512
json.dump(c, open(sys.argv[2], "w"))
PY
  MODEL=$WORK/model
  /usr/bin/python3 tests/reference/mixtral_reference.py make-checkpoint --out "$MODEL" --config "$WORK/config.json" --seed 11 >/dev/null
fi

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; model $MODEL; $CLIENTS clients for $DURATION s;" \
     "moe serve --max-batch $MAX_BATCH --max-queue $MAX_QUEUE --threads $THREADS"
start_server "$MODEL" --max-batch $MAX_BATCH --max-queue $MAX_QUEUE --threads "$THREADS"

rc=0
python3 - "$PORT" "$CLIENTS" "$DURATION" <<'PY' || rc=$?
import http.client, json, random, sys, threading, time

port, clients, duration = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
WARMUP = 30.0
lock = threading.Lock()
ttft, failures, completed = [], [], 0
words = "the quick brown fox jumps over a lazy dog while five boxing wizards jump quickly once upon time".split()
t_start = time.monotonic()
deadline = t_start + duration

def metrics():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"/metrics answered {r.status}")
    return {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l and not l.startswith("#") and len(l.split()) == 2}

def one_request(rng):
    """One streamed completion; returns its client-side TTFT, raises on any failure."""
    prompt = " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
    body = json.dumps({"prompt": prompt, "max_tokens": rng.randint(8, 128), "temperature": 1.0, "stream": True})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        t0 = time.monotonic()
        c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"status {r.status}: {r.read()[:200]!r}")
        if not (r.getheader("Content-Type") or "").startswith("text/event-stream"):
            raise RuntimeError(f"Content-Type {r.getheader('Content-Type')}")
        first, done, events = None, False, 0
        while True:
            line = r.readline()
            if not line:
                break
            line = line.decode("utf-8").rstrip("\r\n")
            if line == "" or line.startswith(":"):  # blank, or an SSE comment (the server's ": waiting")
                continue
            if done:
                raise RuntimeError(f"data after [DONE]: {line[:100]!r}")
            if not line.startswith("data: "):
                raise RuntimeError(f"malformed SSE line {line[:100]!r}")
            payload = line[6:]
            if payload == "[DONE]":
                done = True
                continue
            chunk = json.loads(payload)  # raises on malformed JSON
            if "choices" not in chunk:
                raise RuntimeError(f"chunk without choices: {payload[:100]!r}")
            choices = chunk["choices"]
            if first is None and choices and choices[0].get("text"):
                first = time.monotonic() - t0  # the first chunk with text (the server sends one at once)
            events += 1
        if not done:
            raise RuntimeError(f"no [DONE] after {events} events")
        if events == 0:
            raise RuntimeError("no data event before [DONE]")
        return first  # None: a completion without any text
    finally:
        c.close()

def client(i):
    global completed
    rng = random.Random(i)
    while time.monotonic() < deadline:
        try:
            t = one_request(rng)
            with lock:
                if t is not None:
                    ttft.append(t)
                completed += 1
        except Exception as e:  # counted, and the client goes on
            with lock:
                failures.append(f"{type(e).__name__}: {e}")

rss = []  # (seconds since start, bytes)
def sampler():
    while True:
        now = time.monotonic()
        try:
            rss.append((now - t_start, metrics()["moe_resident_memory_bytes"]))
        except Exception as e:
            with lock:
                failures.append(f"/metrics: {type(e).__name__}: {e}")
        if now >= deadline:
            return
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))

threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
for t in threads: t.start()
s = threading.Thread(target=sampler, daemon=True)
s.start()
for t in threads: t.join()
s.join()
m = metrics()
rss.append((time.monotonic() - t_start, m["moe_resident_memory_bytes"]))
elapsed = time.monotonic() - t_start

def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")

after = [b for t, b in rss if t >= WARMUP]
warm = after[0] if after else rss[0][1]
end = rss[-1][1]
print(f"elapsed {elapsed:.0f} s: requests completed {completed} ({completed / elapsed:.1f}/s), failed {len(failures)}")
print(f"TTFT (client side): p50 {1e3 * pct(ttft, 0.50):.1f} ms, p99 {1e3 * pct(ttft, 0.99):.1f} ms, max {1e3 * max(ttft or [0]):.1f} ms")
print(f"server RSS: after warm-up ({'first sample after %.0f s' % WARMUP if after else 'no sample after the warm-up: the first'}) "
      f"{warm / 1e6:.1f} MB, at the end {end / 1e6:.1f} MB, ratio {end / warm:.3f}")
print("RSS samples (s: MB): " + ", ".join(f"{t:.0f}: {b / 1e6:.1f}" for t, b in rss))
q50 = m.get('moe_time_to_first_token_seconds{quantile="0.5"}', float("nan"))
q99 = m.get('moe_time_to_first_token_seconds{quantile="0.99"}', float("nan"))
print(f"server: {m.get('moe_decode_rows_total', 0) / max(1, m.get('moe_decode_steps_total', 1)):.2f} rows per decode step on average, "
      f"largest batch {m.get('moe_decode_batch_max', 0):.0f}; server-side TTFT p50 {1e3 * q50:.1f} ms, p99 {1e3 * q99:.1f} ms "
      "(its last 4096 requests)")
for f in sorted(set(failures))[:10]:
    print("  failure:", f, f"(x{failures.count(f)})")
bad = False
if failures:
    print(f"FAIL: {len(failures)} failed requests")
    bad = True
if end > 1.10 * warm:
    print(f"FAIL: RSS grew {100 * (end / warm - 1):.1f}% after the warm-up (limit 10%)")
    bad = True
print("FAIL" if bad else "PASS")
sys.exit(1 if bad else 0)
PY
kill -TERM "$SERVER" 2>/dev/null || true
wait "$SERVER" 2>/dev/null || { echo "the server exited with an error:" >&2; tail -5 "$WORK/serve.log" >&2; rc=1; }
SERVER=""
exit $rc
