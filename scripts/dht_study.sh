#!/usr/bin/env bash
# Scale study of expert discovery over the DHT: builds bench/dht_scale and runs it for each node
# count in NODES. Each run starts that many DhtNodes on loopback in one process, announces EXPERTS
# experts of a 2-D grid in contiguous blocks (one block per node), looks every expert up from one
# node, measures the idle maintenance traffic for IDLE_S seconds, and times a new node from its
# bootstrap to a grid prefix's top-k (beam search). One JSON object per run goes to
# OUT/nodes<N>.json (fields: store/get success rates and times, traffic per node per minute,
# newcomer bootstrap and time to top-k).
#
# Knobs (environment variables):
#   BUILD_DIR    build folder (default build; configured if needed)
#   OUT          output folder (default out/dht_study)
#   NODES        node counts (default "256")
#   EXPERTS      experts (default 4096)
#   IDLE_S       seconds of idle traffic measurement (default 20)
#   RUN_TIMEOUT  seconds allowed per run (default 900)
#   SIGNED       1: every server node signs its records (docs/security.md); output nodes<N>-signed.json
# Takes about 1.5 minutes for 256 nodes on a 2-core machine.
# Example: NODES="32 64 128 256" bash scripts/dht_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-out/dht_study}
NODES=${NODES:-256}
EXPERTS=${EXPERTS:-4096}
IDLE_S=${IDLE_S:-20}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
SIGNED=${SIGNED:-0}
SUFFIX=""; [ "$SIGNED" = 1 ] && SUFFIX="-signed"

[ -f "$BUILD_DIR/CMakeCache.txt" ] || cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j 2 --target dht_scale
BIN=$(find "$BUILD_DIR" -name dht_scale -type f -perm -u+x | head -1)
[ -n "$BIN" ] || { echo "dht_scale was not built" >&2; exit 1; }

# Each node holds 3 file descriptors (UDP socket, stop pipe): raise the soft limit for large NODES.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$OUT"
for n in $NODES; do
  echo "== $n nodes, $EXPERTS experts" >&2
  timeout "$RUN_TIMEOUT" "$BIN" --nodes "$n" --experts "$EXPERTS" --idle-s "$IDLE_S" --signed "$SIGNED" \
    > "$OUT/nodes$n$SUFFIX.json"
  cat "$OUT/nodes$n$SUFFIX.json"
done
