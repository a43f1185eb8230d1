#!/usr/bin/env bash
# The synthetic experiment of the MMoE paper (Ma et al., KDD 2018, section 4): two regression tasks
# whose label correlation is 1.0, 0.9, 0.5, 0.0; MMoE, one-gate MoE and a shared-bottom model of
# about the same parameter count, each trained with the same learning-rate search (best on a
# validation set, early-stopped on it) and scored on a test set. bench/mmoe_synthetic.cpp explains
# the data; this builds it if needed, runs it and prints its summary (mean and sd of the test loss
# per correlation and model, and the paired gaps to MMoE).
#   BUILD_DIR     build folder (default build; configured if needed)
#   SEEDS         independent data sets and initialisations per (correlation, model) (default 10)
#   EPOCHS        Adam epochs per learning rate (default 10)
#   LRS           learning rates tried, comma-separated (default 0.003,0.01,0.03)
#   TRAIN, VALID, TEST  samples (default 100000, 5000, 5000: enough that no model overfits, as the
#                 paper's generator allows; at 10000 training rows the test loss mostly measures
#                 overfitting, docs/results.md)
#   BATCH         mini-batch size (default 128)
#   NOISE_SD      standard deviation of each task's label noise (default 0.1; the paper's
#                 "N(0, 0.01)" read as a variance. 0.01 reads it as a standard deviation)
#   JOBS          runs at a time, one thread each (default 2)
#   OUT           the CSV, one row per (correlation, model, seed) (default out/mmoe_synthetic.csv);
#                 every learning rate's validation result goes to the same name with -trials.csv
# About 25 minutes with the defaults on one core (JOBS=1), ~11 on two (EPOCHS=20: ~21). A short version:
# SEEDS=1 EPOCHS=2 bash scripts/mmoe_experiment.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
SEEDS=${SEEDS:-10}
EPOCHS=${EPOCHS:-10}
LRS=${LRS:-0.003,0.01,0.03}
TRAIN=${TRAIN:-100000}
VALID=${VALID:-5000}
TEST=${TEST:-5000}
BATCH=${BATCH:-128}
NOISE_SD=${NOISE_SD:-0.1}
JOBS=${JOBS:-2}
OUT=${OUT:-out/mmoe_synthetic.csv}

if [ ! -x "$BUILD_DIR/bench/mmoe_synthetic" ]; then
  [ -f "$BUILD_DIR/CMakeCache.txt" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" --target mmoe_synthetic
fi
mkdir -p "$(dirname "$OUT")"
"$BUILD_DIR/bench/mmoe_synthetic" --seeds "$SEEDS" --epochs "$EPOCHS" --lrs "$LRS" --train "$TRAIN" --valid "$VALID" \
  --test "$TEST" --batch "$BATCH" --noise-sd "$NOISE_SD" --jobs "$JOBS" --out "$OUT" --trials "${OUT%.csv}-trials.csv"
