#!/usr/bin/env bash
# moe serve on loopback, started and stopped by this test: the OpenAI endpoints (completions and
# chat, whole and streamed), greedy text equal to moe generate's, 8 concurrent requests sharing
# decode steps with each one's text unchanged (prompts prefilled 8 tokens a step), stop strings, a
# client that disconnects mid-stream, a chat's next turn served from the prefix cache, 4xx JSON
# errors for bad requests (the server staying up for the others), SIGTERM.
source "$(dirname "$0")/lib/common.sh"
REF="/usr/bin/python3 $SRC/tests/reference/mixtral_reference.py"
python3 - "$SRC/tests/cli/data/tiny-moe.json" "$WORK/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["max_position_embeddings"] = 512
json.dump(c, open(sys.argv[2], "w"))
PY
M=$WORK/model
$REF make-checkpoint --out "$M" --config "$WORK/config.json" --seed 11 >/dev/null || fail "writing a checkpoint"
cp "$SRC/tests/data/chat_templates/olmoe/tokenizer_config.json" "$M/"  # a chat template for bytes

SERVER=""
stop_server() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; }
trap 'stop_server; rm -rf "$WORK"' EXIT
"$MOE" serve --model "$M" --listen 127.0.0.1:0 --port-file "$WORK/port" --max-batch 4 --max-queue 8 \
  --max-body 4096 --threads 1 --prefill-chunk 8 2>"$WORK/serve.log" &  # prompts prefilled 8 tokens a step
SERVER=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; kill -0 $SERVER 2>/dev/null || break; sleep 0.2; done
[ -s "$WORK/port" ] || { cat "$WORK/serve.log"; fail "the server did not start"; }
PORT=$(cat "$WORK/port")

# Greedy continuations from moe generate, the reference for the server's text: 24 tokens of one
# prompt, and 256 of each concurrent request's (long enough that they overlap on a busy machine).
reference() {  # reference N PROMPT...
  local n=$1 p; shift
  for p in "$@"; do
    "$MOE" generate --model "$M" --prompt "$p" --max-tokens "$n" --temperature 0 2>/dev/null | tail -c +$((${#p} + 1)) \
      | head -c -1 >"$WORK/gen-$n-$(echo "$p" | tr -c 'a-zA-Z0-9\n' _).txt"
  done
}
reference 24 "the quick"
reference 256 "the quick" "once upon" "a b c" "zzz" "hello world" "MoE" "12345" "x"

timeout 120 python3 - "$PORT" "$WORK" <<'PY'
import http.client, json, socket, sys, threading, time
port, work = int(sys.argv[1]), sys.argv[2]

def call(method, path, body=None, raw=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    c.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    out = r.status, r.getheader("Content-Type"), r.read().decode()
    c.close()
    return out

def ok(path, body):
    s, ct, text = call("POST", path, body)
    assert s == 200, (path, s, text)
    return json.loads(text)

def stream(path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", path, body=json.dumps(dict(body, stream=True)), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream"), r.status
    events = [l[6:] for l in r.read().decode().split("\n") if l.startswith("data: ")]
    c.close()
    assert events[-1] == "[DONE]", events[-3:]
    return [json.loads(e) for e in events[:-1]]

def expected(prompt, n=24):
    return open(f"{work}/gen-{n}-{''.join(ch if ch.isalnum() else '_' for ch in prompt)}.txt", encoding="utf-8", errors="replace", newline="").read()

assert json.loads(call("GET", "/health")[2]) == {"status": "ok"}
models = json.loads(call("GET", "/v1/models")[2])
assert models["data"][0]["id"] == "model" and models["data"][0]["context_length"] == 512, models

# Whole and streamed completions: greedy text = moe generate's.
r = ok("/v1/completions", {"prompt": "the quick", "max_tokens": 24, "temperature": 0})
want = expected("the quick")
assert r["choices"][0]["text"] == want, (r["choices"][0]["text"], want)
assert r["choices"][0]["finish_reason"] == "length" and r["usage"] == {"prompt_tokens": 9, "completion_tokens": 24, "total_tokens": 33}, r
chunks = stream("/v1/completions", {"prompt": "the quick", "max_tokens": 24, "temperature": 0, "stream_options": {"include_usage": True}})
assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == want
assert chunks[-2]["choices"][0]["finish_reason"] == "length" and chunks[-1]["usage"]["completion_tokens"] == 24
print(f"completion: {want!r} whole and in {len(chunks)} chunks, as moe generate")

# 8 concurrent requests (batch of 4, the others queued), released together by a barrier: each
# text unchanged.
prompts = ["the quick", "once upon", "a b c", "zzz", "hello world", "MoE", "12345", "x"]
got = {}
start = threading.Barrier(len(prompts))
def one(p):
    start.wait()
    got[p] = ok("/v1/completions", {"prompt": p, "max_tokens": 256, "temperature": 0})["choices"][0]["text"]
threads = [threading.Thread(target=one, args=(p,)) for p in prompts]
for t in threads: t.start()
for t in threads: t.join()
for p in prompts:
    assert got[p] == expected(p, 256), (p, got[p], expected(p, 256))
metrics = call("GET", "/metrics")[2]
value = lambda name: float([l for l in metrics.splitlines() if l.startswith(name + " ")][0].split()[1])
assert value("moe_decode_batch_max") >= 2, metrics
assert value("moe_requests_prefilling") == 0 and value("moe_prefill_tokens_total") > 0, metrics
print(f"8 concurrent requests: texts unchanged; largest decode batch {value('moe_decode_batch_max'):.0f}, "
      f"mean {value('moe_decode_rows_total') / value('moe_decode_steps_total'):.2f}")

# Stop strings: the text up to the first one, finish_reason stop.
stop = want[5:8]
r = ok("/v1/completions", {"prompt": "the quick", "max_tokens": 24, "temperature": 0, "stop": [stop]})
assert r["choices"][0]["text"] == want[:want.index(stop)] and r["choices"][0]["finish_reason"] == "stop", (r, stop)

# Chat through the template, whole and streamed (the first delta carries the role).
msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 👋"}]
r = ok("/v1/chat/completions", {"messages": msgs, "max_tokens": 10, "temperature": 0})
assert r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant", r
chunks = stream("/v1/chat/completions", {"messages": msgs, "max_tokens": 10, "temperature": 0})
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == r["choices"][0]["message"]["content"]
print("chat: whole and streamed agree")

# The conversation's next turn resends the first: the prefix cache supplies those positions.
metrics = call("GET", "/metrics")[2]
before = value("moe_prefix_reused_tokens_total")
msgs2 = msgs + [{"role": "assistant", "content": r["choices"][0]["message"]["content"]}, {"role": "user", "content": "And?"}]
r2 = ok("/v1/chat/completions", {"messages": msgs2, "max_tokens": 10, "temperature": 0})
metrics = call("GET", "/metrics")[2]
reused = value("moe_prefix_reused_tokens_total") - before
assert r["usage"]["prompt_tokens"] <= reused < r2["usage"]["prompt_tokens"], (reused, r["usage"], r2["usage"])
assert value("moe_prefix_cache_bytes") > 0, metrics
print(f"prefix cache: the next turn reused {reused:.0f} of its {r2['usage']['prompt_tokens']} prompt tokens")

# A client that goes away mid-stream: its generation stops (counted as cancelled).
s = socket.create_connection(("127.0.0.1", port))
body = json.dumps({"prompt": "the quick", "max_tokens": 480, "temperature": 1, "stream": True}).encode()
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
seen = b""
while b"data: " not in seen:
    part = s.recv(4096)
    assert part, seen
    seen += part
s.close()
for _ in range(100):
    metrics = call("GET", "/metrics")[2]
    if value("moe_requests_cancelled_total") >= 1 and value("moe_requests_active") == 0: break
    time.sleep(0.1)
assert value("moe_requests_cancelled_total") == 1, metrics
assert "moe_time_to_first_token_seconds{quantile=\"0.99\"}" in metrics
print("disconnect: generation cancelled")

# Bad requests: 4xx with a JSON error body.
def error(status, path, body=None, raw=None, method="POST"):
    s, ct, text = call(method, path, body, raw)
    assert s == status and ct.startswith("application/json"), (path, s, ct, text)
    e = json.loads(text)["error"]
    assert e["code"] == status and e["message"], e
    return e["message"]
print(" ", error(400, "/v1/completions", raw='{"prompt": "x", '))
print(" ", error(400, "/v1/completions", {"prompt": "x", "max_tokens": 600}))
print(" ", error(400, "/v1/completions", {"prompt": "x", "temperature": "hot"}))
print(" ", error(404, "/v1/completions", {"prompt": "x", "model": "gpt-4"}))
print(" ", error(413, "/v1/completions", {"prompt": "x" * 5000}))
print(" ", error(404, "/v2/nothing", method="GET"))
# A body shorter than its Content-Length, then a hang-up; and a line that is not HTTP.
for raw in [b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\"", b"\x00\xff garbage\r\n\r\n"]:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(raw)
    s.close()
assert json.loads(call("GET", "/health")[2]) == {"status": "ok"}
r = ok("/v1/completions", {"prompt": "the quick", "max_tokens": 24, "temperature": 0})
assert r["choices"][0]["text"] == want
print("bad requests: 4xx JSON errors; the server still answers")
PY
# Errors before serving: one line.
expect_error "cannot listen on 127.0.0.1:$PORT" "$MOE" serve --model "$M" --listen "127.0.0.1:$PORT"
expect_error "--listen nowhere: expected HOST:PORT" "$MOE" serve --model "$M" --listen nowhere
expect_error "--prefill-chunk must be >= 0" "$MOE" serve --model "$M" --prefill-chunk -1
kill -TERM $SERVER
for _ in $(seq 100); do kill -0 $SERVER 2>/dev/null || break; sleep 0.1; done
kill -0 $SERVER 2>/dev/null && fail "the server did not stop on SIGTERM"
wait $SERVER || fail "the server exited with an error: $(cat "$WORK/serve.log")"
SERVER=""
grep -q "moe serve: stopped" "$WORK/serve.log" || fail "no clean stop: $(cat "$WORK/serve.log")"
echo "serve passed"
