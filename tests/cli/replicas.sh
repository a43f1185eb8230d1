#!/usr/bin/env bash
# Replica comparison in evaluation: three servers of a permissioned swarm (three listed keys: under
# trust on first use a uid's replicas would have to share one key) host the same experts with the
# same weights; one of them negates its answers (a consistent lie that size checks and canary rows
# let through). `moe eval --compare-replicas 1` outvotes it, bans it, logs the evidence, and gets
# the honest swarm's loss. Bounded in time.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/swarm.sh"
SERVE_FLAGS=(--d-model 32 --d-ff 48 --announce-every 1 --threads 1 --seed 7)  # the same weights everywhere
make_text "$WORK/text.txt"
CONF="$SRC/tests/cli/data/tiny-moe.json"  # 2 layers, 4 experts of d 32, d_ff 48
"$MOE" train --model-config "$CONF" --data "$WORK/text.txt" --batch-size 8 --context 32 --seed 3 --threads 1 \
  --eval-every 0 --steps 5 --out "$WORK/model" >/dev/null 2>&1 || fail "training the model"
BOOT=127.0.0.1:$(free_port)
serve H1 --experts 'ffn.[0:2].[0:4]' --dht-listen "$BOOT"
serve H2 --experts 'ffn.[0:2].[0:4]' --bootstrap "$BOOT"
serve L --experts 'ffn.[0:2].[0:4]' --bootstrap "$BOOT" --attack flip
printf '%s\n%s\n' "$(key_of H1)" "$(key_of H2)" >"$WORK/honest-keys.txt"
printf '%s\n%s\n%s\n' "$(key_of H1)" "$(key_of H2)" "$(key_of L)" >"$WORK/keys.txt"
# A 5 s lookup bound: on a loaded test machine a 1 s search can end before every record came in.
EVAL=(eval --model "$WORK/model" --data "$WORK/text.txt" --context 32 --remote-experts "$BOOT" --k-min 2 --lookup-timeout 5 --json)
# A run whose loss can be compared: it saw every expert (a fresh client's first lookups may miss
# one, and its gate then routes around it, which changes the loss) and no call failed.
COMPLETE='import json,sys; j=json.load(open(sys.argv[1])); sys.exit(j["remote_calls"] == 0 or j["remote_below_k_min"] > 0 or j["remote_unavailable"] > 0 or j["remote_failures"] > 0)'
# The honest swarm's loss.
for _ in 1 2 3 4 5 6; do
  "$MOE" "${EVAL[@]}" --trusted-keys "$WORK/honest-keys.txt" 2>/dev/null | tail -1 >"$WORK/honest.json"
  python3 -c "$COMPLETE" "$WORK/honest.json" && break
  sleep 1
done
# Wait until every server's records are visible to a fresh client (24 = 8 uids x 3 servers): with
# two replicas of an expert in sight, a disagreement stays undecided.
for _ in $(seq 20); do
  "$MOE" swarm-status "$BOOT" --trusted-keys "$WORK/keys.txt" --json >"$WORK/status.json" 2>/dev/null || true
  python3 -c 'import json,sys; sys.exit(len(json.load(open(sys.argv[1]))["experts"]) < 24)' "$WORK/status.json" 2>/dev/null && break
  sleep 0.5
done
# A client that sees only two replicas of an expert cannot decide between them, and one that sees a
# single replica has nothing to compare (that call goes unchecked, and may be the liar's): ask again
# until it saw all three everywhere and checked every call.
for _ in $(seq 20); do
  rm -f "$WORK/evidence.jsonl"
  "$MOE" "${EVAL[@]}" --trusted-keys "$WORK/keys.txt" --compare-replicas 1 --evidence-log "$WORK/evidence.jsonl" 2>"$WORK/eval.err" | tail -1 >"$WORK/checked.json" \
    || { cat "$WORK/eval.err"; fail "eval with replica comparison"; }
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(j["remote_replica_undecided"] > 0 or j["remote_replica_lies"] == 0 or j["remote_replica_checks"] < j["remote_calls"])' "$WORK/checked.json" \
    && python3 -c "$COMPLETE" "$WORK/checked.json" && break
  sleep 1
done
LIAR=$(sed -n 's/^serving .* at \(127.0.0.1:[0-9]*\).*/\1/p' "$WORK/L.log")
[ -n "$LIAR" ] || { cat "$WORK/L.log"; fail "no address in the liar's serving line"; }
python3 - "$WORK/honest.json" "$WORK/checked.json" "$WORK/evidence.jsonl" "$LIAR" <<'PY'
import json, sys
h, c = (json.load(open(p)) for p in sys.argv[1:3])
ev = [json.loads(l) for l in open(sys.argv[3])]
liar = sys.argv[4]
assert c["remote_replica_checks"] == c["remote_calls"] > 0 and c["remote_replica_lies"] > 0, c
for j in (h, c):  # no expert routed around, no failed call (else the losses differ by design)
    assert j["remote_unavailable"] == 0 and j["remote_below_k_min"] == 0, j
lies = [e for e in ev if e["verdict"] == "lie"]
assert lies and all(e["liars"] == [liar] and len(e["servers"]) == 3 for e in lies), ev[:3]
# Undecided: two replicas in sight (a fresh client's first lookups may not show all three).
assert all(e["verdict"] == "undecided" and liar in e["servers"] for e in ev if e not in lies), ev[:3]
assert len(lies) == c["remote_replica_lies"] and len(ev) - len(lies) == c["remote_replica_undecided"], (len(ev), c)
# Every lie outvoted was replaced by the majority's answer: the honest swarm's loss, unless an
# undecided check kept one of the liar's answers.
if not any(e["servers"][0] == liar for e in ev if e["verdict"] == "undecided"):
    assert abs(h["loss"] - c["loss"]) <= 1e-5 * h["loss"], (h["loss"], c["loss"])
print(f"replicas: {c['remote_replica_lies']} lies of {liar} outvoted in {c['remote_replica_checks']} checks "
      f"({c['remote_replica_undecided']} undecided); eval {c['loss']:.6f}, honest swarm {h['loss']:.6f}")
PY
grep -q "outvoted by two replicas, banned" "$WORK/eval.err" || { cat "$WORK/eval.err"; fail "no evidence line on stderr"; }

expect_error "compare-replicas" "$MOE" "${EVAL[@]}" --compare-replicas 2
echo "replicas CLI: ok"
