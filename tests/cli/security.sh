#!/usr/bin/env bash
# Signed discovery from the command line: a client pins the keys of the experts it first sees
# (--trust-store); a hijacker announcing the same uids with another key then gets no call; in a
# permissioned swarm (--trusted-keys) only the listed key's server is called, over pinned TLS; a server keeps its
# identity across restarts; swarm-status lists the experts with their keys; bad trust files are one
# clear error. Bounded in time.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/swarm.sh"
SERVE_FLAGS=(--d-model 32 --d-ff 48 --announce-every 1 --threads 1)
make_text "$WORK/text.txt"
CONF="$SRC/tests/cli/data/tiny-moe.json"  # 2 layers, 4 experts of d 32, d_ff 48
BOOT=127.0.0.1:$(free_port)
stop() {  # stop NAME: SIGTERM and wait (not in a subshell: wait needs the parent); SERVED=its forward calls
  local pid; pid=$(eval echo "\$PID_$1")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  SERVED=$(sed -n 's/^stopped: \([0-9]*\) forward.*/\1/p' "$WORK/$1.log")
}
TRAIN=(--model-config "$CONF" --data "$WORK/text.txt" --batch-size 8 --context 32 --seed 3 --threads 1 --eval-every 0)

serve H --experts 'ffn.[0:2].[0:4]' --dht-listen "$BOOT" --checkpoint "$WORK/ckH"
serve P --experts 'other.0.0' --bootstrap "$BOOT"
KEY_H=$(key_of H)
[ ${#KEY_H} -eq 64 ] || fail "no key in the serving line"
[ -f "$WORK/ckH/identity.pem" ] || fail "the identity was not kept in the checkpoint directory"
# The first client pins H's keys.
"$MOE" train "${TRAIN[@]}" --remote-experts "$BOOT" --trust-store "$WORK/pins.json" --steps 10 --out "$WORK/c1" \
  >/dev/null 2>&1 || fail "first client"
python3 - "$WORK/pins.json" "$KEY_H" <<'PY'
import json, sys
pins = json.load(open(sys.argv[1]))
assert {f"ffn.{l}.{i}" for l in range(2) for i in range(4)} <= set(pins), pins
assert all(pins[f"ffn.{l}.{i}"] == sys.argv[2] for l in range(2) for i in range(4)), pins
PY

# A hijacker announces the same uids with its own key: a client with the pins never calls it.
serve X --experts 'ffn.[0:2].[0:4]' --bootstrap "$BOOT"
sleep 1.5
"$MOE" train "${TRAIN[@]}" --remote-experts "$BOOT" --trust-store "$WORK/pins.json" --steps 10 --out "$WORK/c2" \
  >/dev/null 2>&1 || fail "second client"
python3 - "$WORK/c2/metrics.jsonl" <<'PY'
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
assert sum(x["remote_calls"] for x in m) > 0 and m[-1]["remote_records_rejected"] > 0, m[-1]
print(f"hijack: {m[-1]['remote_records_rejected']} records of another key ignored")
PY
stop X
[ "$SERVED" = 0 ] || { cat "$WORK/X.log"; fail "the hijacker served '$SERVED' calls"; }

# Permissioned: only the listed key's server is called (Y hosts the same uids, over TLS pinned to
# its key).
serve Y --experts 'ffn.[0:2].[0:4]' --bootstrap "$BOOT"  # TLS: the default
printf '# the swarm\n%s\n' "$(key_of Y)" >"$WORK/keys.txt"
# Until Y's records have spread, the other keys' experts count as unavailable: ask again (with a
# 5 s lookup bound: on a loaded test machine a 1 s search can end before every record came in).
for _ in 1 2 3 4 5 6; do
  sleep 1
  "$MOE" eval --model "$WORK/c1" --data "$WORK/text.txt" --context 32 --remote-experts "$BOOT" \
    --trusted-keys "$WORK/keys.txt" --k-min 2 --lookup-timeout 5 --identity "$WORK/client-id" --json 2>"$WORK/e.err" | tail -1 >"$WORK/e.json"
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(j["remote_unavailable"] > 0)' "$WORK/e.json" && break
done
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["remote_calls"] > 0 and j["remote_failures"] == 0, j' "$WORK/e.json" \
  || { cat "$WORK/e.err" "$WORK/Y.log"; fail "permissioned eval"; }
# ... presenting the client's own key on the TLS channel, kept in a file made on first use.
[ -f "$WORK/client-id.pem" ] && [ -f "$WORK/client-id.crt" ] || fail "the client identity was not kept"
[ "$(stat -c %a "$WORK/client-id.pem")" = 600 ] || fail "the client's private key is readable by others"
# swarm-status asks a TLS server over pinned TLS.
"$MOE" swarm-status "$BOOT" --trusted-keys "$WORK/keys.txt" --json >"$WORK/status-y.json"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); e=j["experts"]; assert len(e) == 8 and all(x["tls"] and "error" not in x for x in e), j' "$WORK/status-y.json"
stop Y
[ "${SERVED:-0}" -gt 0 ] || { cat "$WORK/Y.log"; fail "the listed server got no call"; }

# A restarted server is the same key.
stop H
BOOT_P=$(sed -n 's/.*DHT node \(127.0.0.1:[0-9]*\).*/\1/p' "$WORK/P.log")  # H's node is gone
serve H2 --experts 'ffn.[0:2].[0:4]' --bootstrap "$BOOT_P" --checkpoint "$WORK/ckH" --no-tls  # plaintext, as old servers
[ "$(key_of H2)" = "$KEY_H" ] || fail "the restarted server has another key"

# swarm-status lists the live experts with their server's key and state.
sleep 1
"$MOE" swarm-status "$BOOT_P" --json >"$WORK/status.json"
python3 - "$WORK/status.json" "$KEY_H" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
uids = sorted(e["uid"] for e in j["experts"])
assert uids == sorted(f"ffn.{l}.{i}" for l in range(2) for i in range(4)), uids
assert all(e["key"] == sys.argv[2] and e["version"] == 1 and "error" not in e and not e["tls"] for e in j["experts"]), j["experts"][0]
assert len(j["servers"]) == 1 and "records_rejected" in j, j
print(f"swarm-status: {len(uids)} experts, one server")
PY
"$MOE" swarm-status "$BOOT_P" >"$WORK/status.txt"
grep -q "8 experts on 1 servers" "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "swarm-status table"; }

# Clear errors.
printf 'not-a-key\n' >"$WORK/bad.txt"
expect_error "64-digit" "$MOE" eval --model "$WORK/c1" --data "$WORK/text.txt" --remote-experts "$BOOT_P" --trusted-keys "$WORK/bad.txt"
printf '[1]' >"$WORK/badpins.json"
expect_error "uid -> key" "$MOE" eval --model "$WORK/c1" --data "$WORK/text.txt" --remote-experts "$BOOT_P" --trust-store "$WORK/badpins.json"
echo "security CLI: ok"
