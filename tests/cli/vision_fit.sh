#!/usr/bin/env bash
# moe fit and moe predict on an image classifier end to end: tiny IDX files (8x8 images, one bright
# quadrant per class, one set gzipped), a vision MoE config; the model directory, the per-epoch
# metrics, predictions and accuracy as the last JSON line, a confusion matrix; and one clear error
# line with nothing written for each bad input.
source "$(dirname "$0")/lib/common.sh"
python3 - "$WORK" <<'PY'
import gzip, random, struct, sys
w = sys.argv[1]
def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)
def images(n, seed):
    r = random.Random(seed)
    pix, lab = [], []
    for _ in range(n):
        q = r.randrange(4)
        lab.append(q)
        for y in range(8):
            for x in range(8):
                on = (y // 4) * 2 + x // 4 == q
                pix.append(max(0, min(255, int(r.gauss(170 if on else 60, 40)))))
    return idx([n, 8, 8], pix), idx([n], lab)
im, lb = images(600, 1)
open(w + "/train-images.idx.gz", "wb").write(gzip.compress(im))
open(w + "/train-labels.idx", "wb").write(lb)
im, lb = images(200, 2)
open(w + "/test-images.idx", "wb").write(im)
open(w + "/test-labels.idx", "wb").write(lb)
open(w + "/test-labels-short.idx", "wb").write(lb[:-1])  # truncated
open(w + "/test-labels-199.idx", "wb").write(idx([199], lb[8:-1]))  # well formed, one label short
open(w + "/bad-labels.idx", "wb").write(idx([200], [7] * 200))
cfg = {"model_type": "mixtral", "image_size": 8, "patch_size": 4, "num_labels": 4, "hidden_size": 16,
       "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "num_local_experts": 4,
       "num_experts_per_tok": 2, "router_aux_loss_coef": 0.01}
import json
json.dump(cfg, open(w + "/vit.json", "w"))
cfg["patch_size"] = 3
json.dump(cfg, open(w + "/vit-bad.json", "w"))
PY
FIT=(--model-config "$WORK/vit.json" --data "$WORK/train-images.idx.gz" --labels "$WORK/train-labels.idx"
     --test-data "$WORK/test-images.idx" --test-labels "$WORK/test-labels.idx" --epochs 6 --batch-size 32
     --warmup 10 --learning-rate 3e-3 --max-shift 0 --no-flip)
"$MOE" fit "${FIT[@]}" --out "$WORK/m" --json >"$WORK/fit.out" 2>"$WORK/fit.err" || { cat "$WORK/fit.err"; fail "moe fit (images)"; }
[ -s "$WORK/m/config.json" ] && [ -s "$WORK/m/model.safetensors" ] || fail "fit wrote no model directory"
[ "$(wc -l <"$WORK/m/metrics.jsonl")" -eq 6 ] || fail "metrics.jsonl should hold one line per epoch"
grep -q "epoch 6 " "$WORK/fit.err" || { cat "$WORK/fit.err"; fail "no progress line per epoch"; }
"$MOE" predict --model "$WORK/m" --data "$WORK/test-images.idx" --labels "$WORK/test-labels.idx" --out "$WORK/pred.csv" \
  --confusion "$WORK/confusion.svg" --json >"$WORK/pred.out" 2>/dev/null || fail "moe predict (images)"
python3 - "$WORK" <<'PY'
import json, sys, xml.dom.minidom
w = sys.argv[1]
fit = json.loads(open(w + "/fit.out").read().strip().splitlines()[-1])
pred = json.loads(open(w + "/pred.out").read().strip().splitlines()[-1])
assert fit["epochs"] == 6 and fit["test_rows"] == 200, fit
assert pred["rows"] == 200, pred
assert pred["accuracy"] >= 0.95, pred  # the quadrant task is easy: a broken model scores ~0.25
assert abs(pred["accuracy"] - fit["test_accuracy"]) < 1e-9, (pred, fit)  # the saved model is the trained one
rows = open(w + "/pred.csv").read().split()
assert rows[0] == "prediction" and len(rows) == 201, rows[:3]
truth = open(w + "/test-labels.idx", "rb").read()[8:]
agree = sum(int(p) == t for p, t in zip(rows[1:], truth)) / 200
assert abs(agree - pred["accuracy"]) < 1e-9, (agree, pred)
xml.dom.minidom.parse(w + "/confusion.svg")
print("vision fit/predict: test accuracy %.3f" % pred["accuracy"])
PY
# Without labels: predictions only, no accuracy.
"$MOE" predict --model "$WORK/m" --data "$WORK/test-images.idx" --json >"$WORK/nolab.out" 2>/dev/null || fail "predict without labels"
tail -n 1 "$WORK/nolab.out" | grep -q '^{"rows":200}$' || fail "predict without labels: $(tail -n 1 "$WORK/nolab.out")"

# Bad input: one clear line each, and no model directory written.
# fit_with KEY=VALUE...: the flags above with some replaced (CLI11 takes each option once).
fit_with() {
  local cfg=$WORK/vit.json data=$WORK/train-images.idx.gz labels=$WORK/train-labels.idx tlabels=$WORK/test-labels.idx kv
  for kv in "$@"; do local "$kv"; done
  "$MOE" fit --model-config "$cfg" --data "$data" --labels "$labels" --test-data "$WORK/test-images.idx" \
    --test-labels "$tlabels" --epochs 1 --out "$out"
}
expect_error "image_size 8 is not a multiple of patch_size 3" fit_with cfg="$WORK/vit-bad.json" out="$WORK/x1"
expect_error "holds 200 images but" fit_with tlabels="$WORK/test-labels-199.idx" out="$WORK/x2"
expect_error "labels go up to 7, the model has 4 classes" fit_with tlabels="$WORK/bad-labels.idx" out="$WORK/x3"
expect_error "truncated" fit_with data="$WORK/test-images.idx" labels="$WORK/test-labels-short.idx" out="$WORK/x4"
expect_error "cannot open the file" fit_with labels="$WORK/nope.idx" out="$WORK/x5"
expect_error "needs --labels" "$MOE" fit --model-config "$WORK/vit.json" --data "$WORK/test-images.idx" --out "$WORK/x6"
expect_error "are for CSV tables" "$MOE" fit "${FIT[@]}" --target y --out "$WORK/x7"
expect_error "--epochs is for image classifiers" "$MOE" fit --data "$WORK/vit.json" --target y --epochs 3 --out "$WORK/x8"
expect_error "already holds a model" "$MOE" fit "${FIT[@]}" --out "$WORK/m"
grep -q "8804 parameters (5732 active per patch)" "$WORK/fit.err" || { cat "$WORK/fit.err"; fail "parameter counts"; }
for d in x1 x2 x3 x4 x5 x6 x7 x8; do [ ! -e "$WORK/$d" ] || fail "$d was written despite the error"; done
expect_error "needs the true labels" "$MOE" predict --model "$WORK/m" --data "$WORK/test-images.idx" --confusion "$WORK/c.svg"
expect_error "vit.json: not an IDX file" "$MOE" predict --model "$WORK/m" --data "$WORK/vit.json"
# A run stopped after its first epoch (a time limit every epoch passes) and resumed ends as the run
# above that never stopped: the same model file, byte for byte, and the same test accuracy.
DATA=(--data "$WORK/train-images.idx.gz" --labels "$WORK/train-labels.idx" --test-data "$WORK/test-images.idx"
      --test-labels "$WORK/test-labels.idx")
"$MOE" fit "${FIT[@]}" --out "$WORK/r" --time-limit 0.000001 >/dev/null 2>"$WORK/r1.err" || { cat "$WORK/r1.err"; fail "fit stopped by --time-limit"; }
[ "$(wc -l <"$WORK/r/metrics.jsonl")" -eq 1 ] || fail "the stopped run should have logged one epoch"
ls "$WORK/r/trainer_state-1.safetensors" >/dev/null || fail "no training state saved after epoch 1"
echo '{"epoch": 2, "cut by a cr' >>"$WORK/r/metrics.jsonl"  # a line a crash left half written
expect_error "cannot be given with it" "$MOE" fit --resume "${DATA[@]}" --epochs 3 --out "$WORK/r"
expect_error "cannot be given with it" "$MOE" fit --resume "${DATA[@]}" --model-config "$WORK/vit.json" --out "$WORK/r"
expect_error "other training images" "$MOE" fit --resume --data "$WORK/test-images.idx" --labels "$WORK/test-labels.idx" --out "$WORK/r"
"$MOE" fit --resume "${DATA[@]}" --out "$WORK/r" --json >"$WORK/r2.out" 2>"$WORK/r2.err" || { cat "$WORK/r2.err"; fail "fit --resume"; }
grep -q "resumed after epoch 1" "$WORK/r2.err" || { cat "$WORK/r2.err"; fail "no word of the resumed epoch"; }
[ "$(wc -l <"$WORK/r/metrics.jsonl")" -eq 6 ] || { cat "$WORK/r/metrics.jsonl"; fail "metrics.jsonl should hold epochs 1-6 once each"; }
cmp -s "$WORK/m/model.safetensors" "$WORK/r/model.safetensors" || fail "the resumed run's model differs from the uninterrupted run's"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
a = json.loads(open(w + "/fit.out").read().strip().splitlines()[-1])
b = json.loads(open(w + "/r2.out").read().strip().splitlines()[-1])
assert b["epochs"] == 6 and b["test_accuracy"] == a["test_accuracy"], (a, b)
assert [json.loads(l)["epoch"] for l in open(w + "/r/metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
PY
[ "$(ls "$WORK/r" | grep -c trainer_state)" -eq 1 ] || fail "older training states were kept"
expect_error "has finished its 6 epochs" "$MOE" fit --resume "${DATA[@]}" --out "$WORK/r"
expect_error "holds no model to continue" "$MOE" fit --resume "${DATA[@]}" --out "$WORK/x9"
[ ! -e "$WORK/x9" ] || fail "x9 was written despite the error"
expect_error "pass --resume to continue" "$MOE" fit "${FIT[@]}" --out "$WORK/r"

# One writer per model directory: a directory whose lock is held is refused.
mkdir -p "$WORK/busy"
flock "$WORK/busy/.moe.lock" sleep 30 &
holder=$!
for _ in $(seq 50); do flock -n "$WORK/busy/.moe.lock" true 2>/dev/null || break; sleep 0.1; done
expect_error "is in use by another moe fit" "$MOE" fit "${FIT[@]}" --out "$WORK/busy"
kill "$holder" 2>/dev/null || true
echo "vision_fit: all checks passed"
