#!/usr/bin/env bash
# The attack experiments of docs/security.md (an experiment, not a test). The default MoE model on
# the fortune corpus, every MoE layer's experts on 8 expert servers (server i hosts expert i of every
# layer), trained by an honest client:
#   clean    no attacker
#   scale    servers 6 and 7 answer every forward x100   (--attack scale)
#   nan      servers 6 and 7 answer NaN                   (--attack nan)
#   random   servers 6 and 7 answer N(0, 1) noise         (--attack random)
#   poison   clean servers; two more clients train at the same time, sending every expert gradients
#            x1e6 (--poison-gradients scale) and NaN (--poison-gradients nan)
#   overwrite  clean servers; once the client has trained 20 steps, two hijackers announce the uids
#            of servers 6 and 7 with keys of their own (and answer x100 if they are ever called)
#   cost     the clean run's step time with the defences on (pinned TLS, output size checks and
#            canary rows, gradient guard) and off, STEPS_COST steps each, alternated twice
# Usage: scripts/attack_study.sh [clean|scale|nan|random|poison|overwrite|cost|all]
#   env: STEPS, STEPS_COST, OUT, MOE, CLIENT_FLAGS (extra flags of the honest client, e.g.
#   "--output-factor 10"; OUT should then name another directory)
# Everything runs on loopback; every server is started and killed here.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe/moe}
OUT=${OUT:-out/attack}
STEPS=${STEPS:-600}
STEPS_COST=${STEPS_COST:-100}
WHAT=${1:-all}
mkdir -p "$OUT"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed 's/Flags:.*\(avx512_bf16\).*/Flags: ... \1 .../' | tr -s ' ' >"$OUT/cpu.txt"

# serve DIR NAME BOOT|"" ARGS...: one expert server of the default model (d 128, d_ff 256).
serve() {
  local dir=$1 name=$2 boot=$3; shift 3
  local b=(); [ -n "$boot" ] && b=(--bootstrap "$boot")
  "$MOE" serve-experts --d-model 128 --d-ff 256 --threads 1 --announce-every 5 "${b[@]}" "$@" >>"$dir/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do grep -qs "^serving" "$dir/$name.log" && return 0; sleep 0.1; done
  cat "$dir/$name.log"; exit 1
}
stop_all() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
# eight DIR ATTACK|"" [SERVER FLAGS...]: servers 0..7, 6 and 7 lying when ATTACK is set.
eight() {
  local dir=$1 attack=$2; shift 2
  rm -rf "$dir"; mkdir -p "$dir"
  BOOT=127.0.0.1:$(free_port)
  serve "$dir" s0 "" --experts 'ffn.[0:4].0' --dht-listen "$BOOT" --seed 30 "$@"
  for i in $(seq 1 7); do
    local a=(); [ -n "$attack" ] && [ "$i" -ge 6 ] && a=(--attack "$attack")
    serve "$dir" s$i "$BOOT" --experts "ffn.[0:4].$i" --seed $((30 + i)) "${a[@]}" "$@"
  done
}
TRAIN0=(train --steps "$STEPS" --threads 1 --overwrite)
read -r -a CLIENT_EXTRA <<<"${CLIENT_FLAGS:-}"
TRAIN=("${TRAIN0[@]}" --seed 1 "${CLIENT_EXTRA[@]}")

for mode in clean scale nan random; do
  if [ "$WHAT" = "$mode" ] || [ "$WHAT" = all ]; then
    attack=$mode; [ "$mode" = clean ] && attack=""
    eight "$OUT/$mode" "$attack"
    "$MOE" "${TRAIN[@]}" --remote-experts "$BOOT" --out "$OUT/$mode/run" >"$OUT/$mode/train.log" 2>&1
    stop_all
  fi
done

if [ "$WHAT" = poison ] || [ "$WHAT" = all ]; then
  eight "$OUT/poison" ""
  "$MOE" "${TRAIN0[@]}" --remote-experts "$BOOT" --seed 2 --poison-gradients scale --out "$OUT/poison/scale" \
    >"$OUT/poison/scale.log" 2>&1 &
  P1=$!
  "$MOE" "${TRAIN0[@]}" --remote-experts "$BOOT" --seed 3 --poison-gradients nan --out "$OUT/poison/nan" \
    >"$OUT/poison/nan.log" 2>&1 &
  P2=$!
  "$MOE" "${TRAIN[@]}" --remote-experts "$BOOT" --out "$OUT/poison/run" >"$OUT/poison/train.log" 2>&1
  wait $P1 $P2 || true
  stop_all
  grep -h "^stopped" "$OUT"/poison/s*.log >"$OUT/poison/servers.txt" || true
fi

if [ "$WHAT" = overwrite ] || [ "$WHAT" = all ]; then
  eight "$OUT/overwrite" ""
  "$MOE" "${TRAIN[@]}" --remote-experts "$BOOT" --out "$OUT/overwrite/run" >"$OUT/overwrite/train.log" 2>&1 &
  T=$!
  for _ in $(seq 600); do
    [ "$(wc -l <"$OUT/overwrite/run/metrics.jsonl" 2>/dev/null || echo 0)" -ge 20 ] && break
    sleep 1
  done
  for i in 6 7; do
    serve "$OUT/overwrite" x$i "$BOOT" --experts "ffn.[0:4].$i" --seed $((60 + i)) --attack scale
  done
  wait $T || true
  stop_all
  grep -h "^stopped" "$OUT"/overwrite/x*.log >"$OUT/overwrite/hijackers.txt" || true
fi

if [ "$WHAT" = cost ] || [ "$WHAT" = all ]; then
  for rep in 1 2; do
    for d in on off; do
      flags=(); cflags=()  # TLS is the servers' default
      [ "$d" = off ] && flags=(--no-tls --no-gradient-guard) && cflags=(--no-output-validation)
      eight "$OUT/cost-$d-$rep" "" "${flags[@]}"
      "$MOE" train --steps "$STEPS_COST" --threads 1 --seed 1 --overwrite --eval-every 0 --remote-experts "$BOOT" \
        "${cflags[@]}" --out "$OUT/cost-$d-$rep/run" >"$OUT/cost-$d-$rep/train.log" 2>&1
      stop_all
    done
  done
fi

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def run(d):
    p = f"{out}/{d}/metrics.jsonl"
    if not os.path.exists(p):
        return None
    m = [json.loads(l) for l in open(p)]
    val = [x["val_loss"] for x in m if "val_loss" in x]
    banned = next((x["step"] for x in m if x.get("remote_banned_servers", 0) >= 2), None)
    return dict(steps=len(m), val_loss=val[-1] if val else None,
                records_rejected=m[-1].get("remote_records_rejected", 0),
                calls=sum(x.get("remote_calls", 0) for x in m), failures=sum(x.get("remote_failures", 0) for x in m),
                invalid=sum(x.get("remote_invalid", 0) for x in m), first_step_two_banned=banned,
                mean_step_s=sum(x["step_s"] for x in m[10:]) / max(1, len(m) - 10))
res = {"experiment": "attack"}
for d in ("clean/run", "scale/run", "nan/run", "random/run", "poison/run", "poison/scale", "poison/nan", "overwrite/run"):
    r = run(d)
    if r:
        res[d] = r
clean = res.get("clean/run")
if clean:
    for d in ("scale/run", "nan/run", "random/run", "poison/run", "overwrite/run"):
        if d in res and res[d]["val_loss"]:
            res[d]["vs_clean"] = res[d]["val_loss"] / clean["val_loss"] - 1
cost = {}
for d in ("on", "off"):
    t = [run(f"cost-{d}-{r}/run") for r in (1, 2)]
    t = [x["mean_step_s"] for x in t if x]
    if t:
        cost[d] = sum(t) / len(t)
if len(cost) == 2:  # tokens/s on / tokens/s off = step time off / step time on
    res["cost"] = dict(mean_step_s_on=cost["on"], mean_step_s_off=cost["off"], tokens_per_s_on_vs_off=cost["off"] / cost["on"])
hj = f"{out}/overwrite/hijackers.txt"
if os.path.exists(hj):  # "stopped: N forward and M backward calls ..." of each hijacker
    res["overwrite_hijackers_served"] = [int(l.split()[1]) + int(l.split()[4]) for l in open(hj)]
res["client_flags"] = os.environ.get("CLIENT_FLAGS", "")
print(json.dumps(res, indent=1))
open(f"{out}/results.jsonl", "a").write(json.dumps(res) + "\n")
PY
