#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of user files and network messages (fuzz/*_fuzz.cpp:
# safetensors, the sharded index, config.json, the text corpus, train_config.json, the trainer
# state, the expert protocol's messages, DHT records, CSV tables, tokenizer.json, chat templates,
# classic models, IDX images, image classifiers' training states), built with clang's libFuzzer
# under ASan and UBSan (scripts/setup.sh installs clang and libFuzzer), PARALLEL targets at a time
# (default: the cores).
# Usage: bash scripts/fuzz.sh [SECONDS]          each target for SECONDS (default 60)
#        bash scripts/fuzz.sh build               only build the targets (into build-fuzz/)
#        RUNS=1000000 bash scripts/fuzz.sh        each target for that many executions (a campaign)
#        TARGETS="config train_config" bash scripts/fuzz.sh 30
# Each target starts from its seed corpus (fuzz/corpus/NAME/) plus what earlier runs found
# (out/fuzz/NAME/corpus/); a crash, sanitizer report, leak or an input slower than 1 s stops it,
# leaves the input in out/fuzz/NAME/ and makes this script exit 1. One summary line per target.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-60}
OUT=out/fuzz
CXX=clang++ cmake -S fuzz -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "${JOBS:-2}" >/dev/null
[ "$SECONDS_PER" = build ] && exit 0
TARGETS=${TARGETS:-$(cd fuzz && ls *_fuzz.cpp | sed 's/_fuzz\.cpp$//')}
# fuzz_one NAME: one target's run; its summary line goes to $OUT/NAME/summary, its status to the exit code.
fuzz_one() {
  local t=$1 rc runs cov secs
  mkdir -p "$OUT/$t/corpus"
  local limit=(-max_total_time="$SECONDS_PER")
  [ -n "${RUNS:-}" ] && limit=(-runs="$RUNS")
  set +e
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "build-fuzz/${t}_fuzz" "${limit[@]}" -timeout=1 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$OUT/$t/" "$OUT/$t/corpus" "fuzz/corpus/$t" >"$OUT/$t/log.txt" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t/log.txt" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$OUT/$t/log.txt" | tail -n 1 | cut -d' ' -f2)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$OUT/$t/log.txt" | tail -n 1)
  if [ $rc -eq 0 ]; then
    echo "$t: ${runs:-?} executions in ${secs:-?} s, coverage ${cov:-?} edges, 0 crashes" >"$OUT/$t/summary"
  else
    { echo "$t: FAILED after ${runs:-?} executions (exit $rc): $(grep -m1 -E 'ERROR|runtime error|deadly|timeout' "$OUT/$t/log.txt")"
      ls "$OUT/$t"/crash-* "$OUT/$t"/timeout-* "$OUT/$t"/leak-* "$OUT/$t"/oom-* 2>/dev/null || true; } >"$OUT/$t/summary"
  fi
  return $rc
}
# PARALLEL targets at a time (each is one process on one core).
PARALLEL=${PARALLEL:-$(nproc)}
status=0
pids=()
names=()
for t in $TARGETS; do
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 0.5; done
  fuzz_one "$t" &
  pids+=($!)
  names+=("$t")
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || status=1
  cat "$OUT/${names[$i]}/summary"
done
exit $status
