#!/usr/bin/env bash
# The decentralized-experts experiments of docs/decentralized.md (an experiment, not a test):
#   failure  Learning@home's failure experiment on our LM: the default MoE model on the fortune
#            corpus trained locally, with every MoE layer's experts on 4 expert servers, and the same
#            with 10% of expert calls failing at random (--fail-rate 0.1 on every server).
#   churn    8 servers (server i hosts expert i of every layer); 3 of them (37.5%) are SIGKILLed
#            mid-run and restarted 10 s later from their last save.
#   delay    step time with 50 ms added to every expert call (--delay-ms 50) against none.
# Usage: scripts/decentralized_study.sh [failure|churn|delay|all]   (env: STEPS, OUT, MOE, RUNS)
# Everything runs on loopback; every server is started and killed here.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
OUT=${OUT:-out/decentralized}
STEPS=${STEPS:-600}
WHAT=${1:-all}
mkdir -p "$OUT"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
lscpu | grep -E "Model name|^CPU\(s\)" | tr -s ' ' >"$OUT/cpu.txt"

# serve DIR NAME BOOT|"" ARGS...: one expert server of the default model (d 128, d_ff 256), in
# plaintext as when docs/decentralized.md's figures were measured (TLS became the default later;
# docs/security.md measures what it costs).
serve() {
  local dir=$1 name=$2 boot=$3; shift 3
  local b=(); [ -n "$boot" ] && b=(--bootstrap "$boot")
  "$MOE" serve-experts --d-model 128 --d-ff 256 --threads 1 --announce-every 5 --save-every 5 --no-tls \
    --checkpoint "$dir/$name.ck" "${b[@]}" "$@" >>"$dir/$name.log" 2>&1 &
  PIDS+=($!)
  eval "PID_$name=$!"
  for _ in $(seq 300); do grep -qs "^serving" "$dir/$name.log" && return 0; sleep 0.1; done
  cat "$dir/$name.log"; exit 1
}
stop_all() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
final_val() { python3 -c 'import json,sys; v=[json.loads(l)["val_loss"] for l in open(sys.argv[1]) if "val_loss" in l]; print(v[-1])' "$1/metrics.jsonl"; }
TRAIN=(train --steps "$STEPS" --threads 1 --seed 1 --overwrite)

# 4 servers, server j hosting experts 2j, 2j+1 of every layer; $1: extra server flags.
four_servers() {
  local dir=$1; shift
  rm -rf "$dir"; mkdir -p "$dir"
  start_four "$dir" "$@"
}
# The same servers without wiping DIR: they reload their saved experts.
start_four() {
  local dir=$1; shift
  BOOT=127.0.0.1:$(free_port)
  serve "$dir" s0 "" --experts 'ffn.[0:4].[0:2]' --dht-listen "$BOOT" --seed 10 "$@"
  for j in 1 2 3; do serve "$dir" s$j "$BOOT" --experts "ffn.[0:4].[$((2 * j)):$((2 * j + 2))]" --seed $((10 + j)) "$@"; done
}

if [ "$WHAT" = failure ] || [ "$WHAT" = all ]; then
  RUNS=${RUNS:-local remote remote10}  # e.g. RUNS=remote10 re-runs one and re-reads the others
  if [[ " $RUNS " == *" local "* ]]; then "$MOE" "${TRAIN[@]}" --out "$OUT/local" >"$OUT/local.log" 2>&1; fi
  if [[ " $RUNS " == *" remote "* ]]; then
    four_servers "$OUT/remote"
    "$MOE" "${TRAIN[@]}" --remote-experts "$BOOT" --out "$OUT/remote/run" >"$OUT/remote/train.log" 2>&1
    stop_all
  fi
  if [[ " $RUNS " == *" remote10 "* ]]; then
    four_servers "$OUT/remote10" --fail-rate 0.1
    "$MOE" "${TRAIN[@]}" --remote-experts "$BOOT" --out "$OUT/remote10/run" >"$OUT/remote10/train.log" 2>&1
    stop_all
  fi
  # Each trained model evaluated with every expert answering (the servers restarted from their
  # saves without --fail-rate), on the validation text's first 65536 bytes.
  head -c 65536 "$OUT/local/heldout.txt" >"$OUT/val65536.txt"
  "$MOE" eval --model "$OUT/local" --data "$OUT/val65536.txt" --threads 1 --json 2>/dev/null | tail -1 >"$OUT/local/eval.json"
  for r in remote remote10; do
    start_four "$OUT/$r"
    "$MOE" eval --model "$OUT/$r/run" --data "$OUT/val65536.txt" --threads 1 --json --remote-experts "$BOOT" \
      2>/dev/null | tail -1 >"$OUT/$r/run/eval.json"
    stop_all
  done
  python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def run(d):
    m = [json.loads(l) for l in open(f"{out}/{d}/metrics.jsonl")]
    val = [x["val_loss"] for x in m if "val_loss" in x][-1]
    calls = sum(x.get("remote_calls", 0) for x in m)
    fails = sum(x.get("remote_failures", 0) for x in m)
    below = sum(x.get("remote_below_k_min", 0) for x in m)
    secs = sum(x["step_s"] for x in m)
    ev = json.load(open(f"{out}/{d}/eval.json"))
    return dict(run=d, steps=len(m), val_loss=val, eval_all_answering=ev["loss"], calls=calls, failures=fails,
                below_k_min=below, train_s=round(secs, 1))
local, remote, r10 = run("local"), run("remote/run"), run("remote10/run")
res = dict(experiment="failure", local=local, remote=remote, remote_fail10=r10,
           remote_vs_local=remote["val_loss"] / local["val_loss"] - 1,
           fail10_vs_remote=r10["val_loss"] / remote["val_loss"] - 1,
           eval_remote_vs_local=remote["eval_all_answering"] / local["eval_all_answering"] - 1,
           eval_fail10_vs_remote=r10["eval_all_answering"] / remote["eval_all_answering"] - 1)
print(json.dumps(res, indent=1))
open(f"{out}/results.jsonl", "a").write(json.dumps(res) + "\n")
PY
fi

if [ "$WHAT" = churn ] || [ "$WHAT" = all ]; then
  D="$OUT/churn"; rm -rf "$D"; mkdir -p "$D"
  BOOT=127.0.0.1:$(free_port)
  serve "$D" c0 "" --experts 'ffn.[0:4].0' --dht-listen "$BOOT" --seed 20
  for i in $(seq 1 7); do serve "$D" c$i "$BOOT" --experts "ffn.[0:4].$i" --seed $((20 + i)); done
  FT=2; BT=4
  "$MOE" "${TRAIN[@]}" --remote-experts "$BOOT" --forward-timeout $FT --backward-timeout $BT \
    --out "$D/run" >"$D/train.log" 2>&1 &
  TP=$!
  until [ -f "$D/run/metrics.jsonl" ] && [ "$(wc -l <"$D/run/metrics.jsonl")" -ge $((STEPS / 3)) ]; do sleep 0.5; done
  KILL_T=$(date +%s.%N)
  kill -9 "$PID_c2" "$PID_c5" "$PID_c7"
  sleep 10
  RESTART_T=$(date +%s.%N)
  for i in 2 5 7; do serve "$D" c$i "$BOOT" --experts "ffn.[0:4].$i" --seed $((20 + i)); done
  wait $TP
  stop_all
  python3 - "$D" "$KILL_T" "$RESTART_T" "$FT" "$BT" <<'PY'
import json, math, sys, re
d, kill_t, restart_t, ft, bt = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
m = [json.loads(l) for l in open(f"{d}/run/metrics.jsonl")]
L = 4
budget = L * (ft + bt)  # every layer's forward and backward deadline
during = [x for x in m if kill_t <= x["time"] <= restart_t + 60]
after = [x for x in m if x["time"] > restart_t]
# Found again: the end of the first step after the restart in which every expert was reachable
# (none routed around) and no call failed.
found = None
for x in after:
    if x.get("remote_unavailable", 0) == 0 and x["remote_failures"] == 0:
        found = x["time"] - restart_t
        break
reloaded = all("reloaded from" in open(f"{d}/c{i}.log").read().split("serving")[-1] for i in (2, 5, 7))
before = [x["loss"] for x in m if x["time"] < kill_t][-20:]
res = dict(experiment="churn", servers=8, killed=3, steps=len(m), kill_time=kill_t, restart_time=restart_t,
           max_step_s=max(x["step_s"] for x in m), step_budget_s=budget,
           max_step_s_while_down=max((x["step_s"] for x in during), default=0),
           nan=any(not math.isfinite(x["loss"]) for x in m),
           loss_before_kill=sum(before) / len(before), loss_end=sum(x["loss"] for x in m[-20:]) / 20,
           failures=sum(x["remote_failures"] for x in m), found_again_s=found, announce_T=5,
           reloaded=reloaded)
print(json.dumps(res, indent=1))
open(f"{d}/../results.jsonl", "a").write(json.dumps(res) + "\n")
PY
fi

if [ "$WHAT" = delay ] || [ "$WHAT" = all ]; then
  for delay in 0 50; do
    four_servers "$OUT/delay$delay" --delay-ms $delay
    "$MOE" train --steps 40 --threads 1 --seed 1 --overwrite --eval-every 0 --remote-experts "$BOOT" \
      --out "$OUT/delay$delay/run" >"$OUT/delay$delay/train.log" 2>&1
    stop_all
  done
  python3 - "$OUT" <<'PY'
import json, sys, statistics
out = sys.argv[1]
med = lambda d: statistics.median(json.loads(l)["step_s"] for l in list(open(f"{out}/{d}/run/metrics.jsonl"))[5:])
res = dict(experiment="delay", step_s_no_delay=med("delay0"), step_s_delay50=med("delay50"))
res["ratio"] = res["step_s_delay50"] / res["step_s_no_delay"]
print(json.dumps(res, indent=1))
open(f"{out}/results.jsonl", "a").write(json.dumps(res) + "\n")
PY
fi
