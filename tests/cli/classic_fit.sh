#!/usr/bin/env bash
# moe fit and moe predict end to end on small CSV tables: a piecewise-linear regression (4 linear
# experts find its 4 regions), a classification with a categorical column, the model directory
# read back, metrics as the last JSON line, and one clear error line (nothing written) for each
# bad input.
source "$(dirname "$0")/lib/common.sh"
python3 - "$WORK" <<'PY'
import random, sys
w = sys.argv[1]
def quadrants(path, n, seed):
    r = random.Random(seed)
    with open(path, "w") as f:
        f.write("x1,x2,y\n")
        for _ in range(n):
            a, b = r.uniform(-1, 1), r.uniform(-1, 1)
            y = (2.0 if a >= 0 else -1.0) * a + (1.5 if b >= 0 else -2.0) * b + 0.5 + r.gauss(0, 0.1)
            f.write("%.6f,%.6f,%.6f\n" % (a, b, y))
quadrants(w + "/train.csv", 1500, 1)
quadrants(w + "/test.csv", 500, 2)
def classes(path, n, seed):
    r = random.Random(seed)
    with open(path, "w") as f:
        f.write("height,shape,\"label, quoted\"\n")
        for _ in range(n):
            h, s = r.uniform(0, 10), r.choice(["round", "square"])
            lab = ("tall" if h > 5 else "short") if s == "round" else ("short" if h > 5 else "tall")
            f.write("%.4f,%s,%s\n" % (h, s, lab))
classes(w + "/c-train.csv", 400, 3)
classes(w + "/c-test.csv", 200, 4)
PY

"$MOE" fit --data "$WORK/train.csv" --target y --experts linear:4 --restarts 5 --out "$WORK/reg" --json >"$WORK/fit.out" 2>"$WORK/fit.err" \
  || { cat "$WORK/fit.err"; fail "moe fit (regression)"; }
[ -s "$WORK/reg/config.json" ] && [ -s "$WORK/reg/model.safetensors" ] || fail "fit wrote no model directory"
"$MOE" predict --model "$WORK/reg" --data "$WORK/test.csv" --out "$WORK/pred.csv" --json >"$WORK/pred.json" 2>/dev/null \
  || fail "moe predict (regression)"
python3 - "$WORK" <<'PY'
import csv, json, sys
w = sys.argv[1]
j = json.loads(open(w + "/pred.json").read().strip().splitlines()[-1])
assert j["rows"] == 500 and j["mse"] < 0.0125 and j["r2"] > 0.97, j   # noise variance 0.01, var(y) ~0.56
rows = list(csv.reader(open(w + "/pred.csv")))
assert rows[0] == ["y_predicted"] and len(rows) == 501, rows[:2]
truth = [float(r[2]) for r in list(csv.reader(open(w + "/test.csv")))[1:]]
mse = sum((float(p[0]) - t) ** 2 for p, t in zip(rows[1:], truth)) / 500
assert abs(mse - j["mse"]) < 1e-6 * max(1, j["mse"]) + 1e-9, (mse, j)
PY

# Heterogeneous experts under two levels of MLP gates (EM), and a backprop-trained mixture.
"$MOE" fit --data "$WORK/train.csv" --target y --experts linear:2,tree:2 --depth 2 --gate mlp --hidden 4 --restarts 1 --iterations 20 \
  --out "$WORK/hme" >"$WORK/hme.out" 2>"$WORK/hme.err" || { cat "$WORK/hme.err"; fail "moe fit (hme)"; }
grep -q "4 experts (linear:2,tree:2) under 3 gate(s) of depth 2" "$WORK/hme.err" || fail "hme fit: $(head -1 "$WORK/hme.err")"
"$MOE" predict --model "$WORK/hme" --data "$WORK/test.csv" --json 2>/dev/null | tail -1 >"$WORK/hme.json" || fail "moe predict (hme)"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["rows"] == 500 and j["r2"] > 0.9, j' "$WORK/hme.json" || fail "hme: $(cat "$WORK/hme.json")"
"$MOE" fit --data "$WORK/train.csv" --target y --experts linear:4 --method backprop --iterations 80 --learning-rate 0.03 --batch-size 50 \
  --out "$WORK/bp" --json >"$WORK/bp.out" 2>"$WORK/bp.err" || { cat "$WORK/bp.err"; fail "moe fit (backprop)"; }
tail -1 "$WORK/bp.out" | grep -q '"epochs":' || fail "backprop fit: $(tail -1 "$WORK/bp.out")"
"$MOE" predict --model "$WORK/bp" --data "$WORK/test.csv" --json 2>/dev/null | tail -1 >"$WORK/bp.json" || fail "moe predict (backprop)"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["r2"] > 0.95, j' "$WORK/bp.json" || fail "backprop: $(cat "$WORK/bp.json")"

"$MOE" fit --data "$WORK/c-train.csv" --target "label, quoted" --experts logistic:2 --out "$WORK/cls" >/dev/null 2>&1 || fail "moe fit (classification)"
"$MOE" predict --model "$WORK/cls" --data "$WORK/c-test.csv" --json >"$WORK/c-pred.out" 2>/dev/null || fail "moe predict (classification)"
python3 - "$WORK/c-pred.out" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().strip().splitlines()
j = json.loads(lines[-1])
assert j["rows"] == 200 and j["accuracy"] > 0.9, j   # XOR of shape and height: one logistic expert alone cannot
PY
# Pictures: the gate partition of the 4-region model (SVG read back by Python's XML parser: four
# experts' colours in the grid) and the classifier's confusion matrix (its cells add up to the rows).
"$MOE" predict --model "$WORK/reg" --data "$WORK/test.csv" --gate-plot "$WORK/gate.svg" --json >/dev/null 2>&1 || fail "predict --gate-plot"
"$MOE" predict --model "$WORK/cls" --data "$WORK/c-test.csv" --confusion "$WORK/conf.svg" --json >/dev/null 2>&1 || fail "predict --confusion"
python3 - "$WORK" <<'PY' || fail "the SVG pictures"
import re, sys, xml.etree.ElementTree as ET
w, ns = sys.argv[1], "{http://www.w3.org/2000/svg}"
root = ET.parse(w + "/gate.svg").getroot()
grid = [g for g in root.iter(ns + "g") if g.get("shape-rendering") == "crispEdges"][0]
assert len({r.get("fill") for r in grid.iter(ns + "rect")}) == 4, "not 4 experts' colours"
assert len(list(root.iter(ns + "circle"))) == 500
root = ET.parse(w + "/conf.svg").getroot()
cells = [int(t.text) for t in root.iter(ns + "text") if t.text and re.fullmatch(r"[0-9]+", t.text)]
assert len(cells) == 4 and sum(cells) == 200, cells
PY
expect_error "confusion: $WORK/reg is a regression model" "$MOE" predict --model "$WORK/reg" --data "$WORK/test.csv" --confusion "$WORK/c2.svg"
expect_error "needs a model with exactly two numeric input columns" "$MOE" predict --model "$WORK/cls" --data "$WORK/c-test.csv" --gate-plot "$WORK/g2.svg" --out "$WORK/p3.csv"
[ ! -e "$WORK/c2.svg" ] && [ ! -e "$WORK/g2.svg" ] && [ ! -e "$WORK/p3.csv" ] || fail "a refused picture wrote a file"

# Predictions without the target column: no metrics, the predicted class and its probabilities.
cut -d, -f1,2 "$WORK/c-test.csv" >"$WORK/c-x.csv"
"$MOE" predict --model "$WORK/cls" --data "$WORK/c-x.csv" >"$WORK/c-x.out" 2>/dev/null || fail "predict without the target"
head -1 "$WORK/c-x.out" | grep -q '^"label, quoted_predicted",p_short,p_tall$' || fail "predictions header: $(head -1 "$WORK/c-x.out")"
[ "$(wc -l <"$WORK/c-x.out")" = 201 ] || fail "predictions: $(wc -l <"$WORK/c-x.out") lines"

# Bad input: one error line each, nothing written.
printf 'x1,x2,y\n1,2,3\n4,5\n' >"$WORK/ragged.csv"
printf 'x1,x2,y\n1,2,3\nfour,5,6\n' >"$WORK/text.csv"
: >"$WORK/empty.csv"
expect_error "ragged.csv:3: a row of 2 fields under a header of 3" "$MOE" fit --data "$WORK/ragged.csv" --target y --out "$WORK/o1"
expect_error "text.csv:3: column 'x1' is numeric (from its first row) but holds 'four'" "$MOE" fit --data "$WORK/text.csv" --target y --out "$WORK/o2"
expect_error "empty.csv: the file is empty" "$MOE" fit --data "$WORK/empty.csv" --target y --out "$WORK/o3"
expect_error "no column 'z' (columns: x1, x2, y)" "$MOE" fit --data "$WORK/train.csv" --target z --out "$WORK/o4"
expect_error "unknown kind 'forest' (known: linear, logistic, mlp, tree)" "$MOE" fit --data "$WORK/train.csv" --target y --experts forest:2 --out "$WORK/o5"
expect_error "a 'logistic' expert is for classification" "$MOE" fit --data "$WORK/train.csv" --target y --experts logistic:2 --out "$WORK/o6"
expect_error "the tree kind has no gradient" "$MOE" fit --data "$WORK/train.csv" --target y --experts linear:2,tree:2 --method backprop --out "$WORK/o7"
expect_error "3 experts cannot fill a tree of gates of depth 2" "$MOE" fit --data "$WORK/train.csv" --target y --experts linear:3 --depth 2 --out "$WORK/o8"
expect_error "gate forest: linear or mlp" "$MOE" fit --data "$WORK/train.csv" --target y --gate forest --out "$WORK/o9"
for o in o1 o2 o3 o4 o5 o6 o7 o8 o9; do [ ! -e "$WORK/$o" ] || fail "a failed fit wrote $o"; done
expect_error "already holds a model (pass --overwrite" "$MOE" fit --data "$WORK/train.csv" --target y --out "$WORK/reg"
printf 'x1,y\n1,2\n' >"$WORK/narrow.csv"
expect_error "no column 'x2' (columns: x1, y)" "$MOE" predict --model "$WORK/reg" --data "$WORK/narrow.csv" --out "$WORK/p2.csv"
[ ! -e "$WORK/p2.csv" ] || fail "a failed predict wrote its output"
expect_error "config.json: cannot open" "$MOE" predict --model "$WORK/nothing" --data "$WORK/test.csv"
echo "classic_fit: ok"
