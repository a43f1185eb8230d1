#!/usr/bin/env bash
# The vision MoE on Fashion-MNIST (Debian's dataset-fashion-mnist) against its dense twin at the same
# active FLOPs: configs/vit-moe-fashion.json (8 experts of width 128, top-2 per patch) and
# configs/vit-dense-fashion.json (one MLP of width 256), the same everything else. By default they
# train one after the other, each on all cores; SEQUENTIAL=0 trains both at once, one thread each.
# Each runs EPOCHS epochs or until TIME_LIMIT seconds have passed (checked after each epoch) and is
# scored on the 10,000 test images after every epoch (metrics.jsonl in each model directory).
# Prints one line per model: epochs, seconds, test accuracy.
#   BUILD_DIR   build folder with tools/moe/moe (default build)
#   MODELS      which of the two (default "moe dense")
#   SEQUENTIAL  1 (default): one model at a time with all cores; 0: both at once, one thread each
#   EPOCHS      (default 60: ~51 minutes per model alone on 2 quiet cores, ~100 minutes for both)
#   TIME_LIMIT  seconds per model (default 3300: under one hour of training, with the last epoch)
#   OUT         where the model directories go (default out/vision)
#   RESUME      1: continue the runs saved in OUT after their last epoch (moe fit --resume, the
#               settings they started with; TIME_LIMIT then counts the resumed part only)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
EPOCHS=${EPOCHS:-60}
TIME_LIMIT=${TIME_LIMIT:-3300}
OUT=${OUT:-out/vision}
MOE=$BUILD_DIR/tools/moe/moe
[ -x "$MOE" ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }
mkdir -p "$OUT"
lscpu | grep -E "^Model name|^CPU\(s\)" | sed 's/^/# /'
MODELS=${MODELS:-moe dense}
SEQUENTIAL=${SEQUENTIAL:-1}
RESUME=${RESUME:-0}
fit() {  # fit MODEL THREADS
  local run=(--model-config "configs/vit-$1-fashion.json" --epochs "$EPOCHS" --overwrite)
  if [ "$RESUME" = 1 ]; then run=(--resume); else : >"$OUT/$1.log"; fi  # a resumed run's log goes on
  OMP_NUM_THREADS=$2 "$MOE" fit "${run[@]}" --dataset fashion-mnist --out "$OUT/$1" --time-limit "$TIME_LIMIT" --json \
    >"$OUT/$1.out" 2>>"$OUT/$1.log"
}
for m in $MODELS; do
  if [ "$SEQUENTIAL" = 1 ]; then fit "$m" "$(nproc)"; else fit "$m" 1 & fi
done
wait
for m in $MODELS; do
  python3 - "$m" "$OUT/$m.out" <<'PY'
import json, sys
j = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
print("%-6s epochs %d, %.0f s, %d parameters (%d active), test accuracy %.4f, test loss %.4f"
      % (sys.argv[1], j["epochs"], j["seconds"], j["parameters"], j["active_parameters"], j["test_accuracy"], j["test_loss"]))
PY
done
