#!/usr/bin/env bash
# PEER end to end through the CLI: train a model whose middle layer is PEER, eval, generate, the
# PEER usage statistics of moe experts, grow the expert pool (loss within 1%), train on from the
# grown checkpoint, and clear errors for bad PEER settings.
source "$(dirname "$0")/lib/common.sh"
make_text "$WORK/text.txt"
python3 - "$SRC/tests/cli/data/tiny-moe.json" "$WORK/peer.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update({"num_hidden_layers": 3, "ffn_type": "peer", "peer_num_experts": 1024, "peer_heads": 4, "peer_top_k": 4, "peer_key_dim": 16})
json.dump(c, open(sys.argv[2], "w"))
PY

"$MOE" train --model-config "$WORK/peer.json" --data "$WORK/text.txt" --out "$WORK/p" --steps 40 --batch-size 8 \
  --lr 1e-2 --eval-every 20 --seed 3 2>"$WORK/train.err"
grep -q "step 40/40" "$WORK/train.err" || { cat "$WORK/train.err"; fail "no progress line"; }
grep -q "layer 1 PEER on validation: .* of experts retrieved" "$WORK/train.err" || { cat "$WORK/train.err"; fail "no PEER usage line"; }
python3 - "$WORK/p/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
val = [r for r in rows if "val_loss" in r]
assert len(val) == 2 and all(r["peer_layers"] == [1] and 0 < r["peer_fraction_used"][0] <= 1 for r in val), val
assert not any("peer_fraction_used" in r for r in rows if "val_loss" not in r)
PY
python3 - "$WORK/p/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
assert c["ffn_type"] == "peer" and c["peer_num_experts"] == 1024 and c["peer_layers"] == [1], c
PY
"$MOE" info --model "$WORK/p" | grep -q "PEER layers 1: 1024 single-neuron experts" || fail "moe info: no PEER line"
"$MOE" eval --model "$WORK/p" --data "$WORK/p/heldout.txt" --json >"$WORK/eval"
"$MOE" generate --model "$WORK/p" --prompt "the quick" --max-tokens 30 --seed 2 2>/dev/null | head -c -1 >"$WORK/s1"
"$MOE" generate --model "$WORK/p" --prompt "the quick" --max-tokens 30 --seed 2 2>/dev/null | head -c -1 >"$WORK/s2"
[ "$(wc -c <"$WORK/s1")" -eq 39 ] && [ "$(head -c 9 "$WORK/s1")" = "the quick" ] || fail "expected the prompt and 30 bytes"
cmp -s "$WORK/s1" "$WORK/s2" || fail "the same seed sampled different text"

"$MOE" experts --model "$WORK/p" --data "$WORK/p/heldout.txt" --json >"$WORK/experts"
python3 - "$WORK/experts" <<'PY'
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
s = j["peer"]["1"]["(all inputs)"]
assert 0 < s["fraction_used"] <= 1 and s["kl_from_uniform"] >= 0 and 0 <= s["head_overlap"] <= 1, s
assert j["layers"] == [0, 2], j["layers"]  # the routed MoE layers around the PEER layer
PY

"$MOE" grow --model "$WORK/p" --peer-num-experts 4096 --out "$WORK/g" --json >"$WORK/grow"
python3 - "$WORK/grow" "$WORK/eval" <<'PY'
import json, sys
g = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
e = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
assert g["experts_before"] == 1024 and g["experts_after"] == 4096, g
assert abs(g["relative_change"]) < 0.01, g
assert abs(g["loss_before"] - e["loss"]) < 1e-4 * e["loss"], (g, e)  # same held-out text, same loss
PY
"$MOE" train --init "$WORK/g" --data "$WORK/text.txt" --out "$WORK/g2" --steps 20 --batch-size 8 --lr 5e-3 \
  --eval-every 20 --seed 4 2>"$WORK/train2.err"
grep -q "step 20/20" "$WORK/train2.err" || { cat "$WORK/train2.err"; fail "training after growth"; }
python3 - "$WORK/g2/config.json" <<'PY'
import json, sys
assert json.load(open(sys.argv[1]))["peer_num_experts"] == 4096
PY

# Errors: one clear line, non-zero exit.
expect_error "must exceed" "$MOE" grow --model "$WORK/p" --peer-num-experts 1024 --out "$WORK/x"
expect_error "perfect square" "$MOE" grow --model "$WORK/p" --peer-num-experts 5000 --out "$WORK/x"
expect_error "already holds" "$MOE" grow --model "$WORK/p" --peer-num-experts 4096 --out "$WORK/g"
python3 -c "import json,sys; c=json.load(open('$WORK/peer.json')); c['peer_num_experts']=1000; json.dump(c,open('$WORK/bad.json','w'))"
expect_error "perfect square" "$MOE" train --model-config "$WORK/bad.json" --data "$WORK/text.txt" --out "$WORK/bad"
expect_error "cannot be combined" "$MOE" train --init "$WORK/g" --resume --data "$WORK/text.txt" --out "$WORK/g2"
echo OK
