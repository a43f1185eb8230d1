#!/usr/bin/env bash
# Network study of expert-parallel training (docs/distributed.md, "Network study and cost model").
#
# Runs `moe bench train --expert-parallel 2` with its two MPI ranks in two network namespaces
# (moe-ns0, moe-ns1) joined by one veth pair (moe-v0 10.231.0.1 <-> moe-v1 10.231.0.2), the MPI
# traffic forced onto that link (TCP only, no shared memory) and the link rate-limited with tc tbf
# on both ends: unlimited, 10gbit, 1gbit, 100mbit; with Open MPI's default TCP settings and with
# two TCP connections per pair of ranks. Also runs the single-process reference (the same global
# batch on 2 threads, and one rank's half batch on 1 thread). Writes the raw results as JSON
# lines, checks from the veth byte counters that the traffic really crossed the link, fits a cost
# model (step = compute + collectives x latency + bytes / (efficiency x rate)) by least squares and
# predicts step time and scaling efficiency on 2..64 nodes.
#
# The machine may be shared (and it is a VM): before each run the script waits (at most QUIET_WAIT s,
# QUIET_BUDGET s in all) until other processes and the hypervisor's steal take less than QUIET_CORES
# cores, and it records what they took during each run; runs where they took more than
# CONTENDED_CORES on average are marked contended and left out of the fit (their errors are still
# shown).
#
# Needs root (network namespaces, tc), iproute2, Open MPI's mpirun, and a python3 with numpy.
# Takes about 9 minutes with the defaults on a 2-core machine, plus up to QUIET_BUDGET (5 min) of
# waiting when the machine is busy; every run is bounded by RUN_TIMEOUT. Everything it creates
# (namespaces, veth pairs, a bridge, a temp dir) is removed on exit, also when interrupted.
#
# Knobs (environment variables):
#   MOE          the moe binary (default build/tools/moe/moe; copied first, so a rebuild during the
#                study cannot change it)
#   OUT          output folder (default out/network_study): results.jsonl, logs/, fit.json, report.md
#   RATES        link rates (default "unlimited 10gbit 1gbit 100mbit"; tc units kbit/mbit/gbit)
#   BATCHES      global batch sizes in sequences of 128 tokens (default "8 32 64"; even numbers)
#   STEPS        timed steps per run (default 5; the bench reports the median, after 2 warm-up steps)
#   REPEATS      sweeps over all batches and rates (default 2); every run is a point of the fit
#   REFERENCE=0  skip the single-process reference runs
#   RUN_TIMEOUT  seconds allowed per run (default 240)
#   VARIANTS     MPI settings to sweep (default "default links2"): default = Open MPI's own settings
#                (one TCP connection per pair of ranks), links2 = --mca btl_tcp_links 2
#   MPI_EXTRA    extra mpirun arguments for every run (default none)
#   QUIET_CORES, QUIET_WAIT, QUIET_BUDGET, CONTENDED_CORES   see above (0.3, 60, 300, 0.3)
#   FIT_ONLY=1   no runs: refit and reprint from an existing OUT/results.jsonl
#   BURST_CREDIT=0  fit without the shaper's burst credit (the model before it, for comparison)
# Example: bash scripts/network_study.sh
#          VARIANTS=default REPEATS=1 RATES="unlimited 1gbit 100mbit" BATCHES=32 bash scripts/network_study.sh
#          (about 1 minute)
set -euo pipefail
cd "$(dirname "$0")/.."

MOE=${MOE:-build/tools/moe/moe}
OUT=${OUT:-out/network_study}
RATES=${RATES:-"unlimited 10gbit 1gbit 100mbit"}
BATCHES=${BATCHES:-"8 32 64"}
STEPS=${STEPS:-5}
REPEATS=${REPEATS:-2}
REFERENCE=${REFERENCE:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-240}
VARIANTS=${VARIANTS:-"default links2"}
MPI_EXTRA=${MPI_EXTRA:-}
QUIET_CORES=${QUIET_CORES:-0.3}
QUIET_WAIT=${QUIET_WAIT:-60}
QUIET_BUDGET=${QUIET_BUDGET:-300}
CONTENDED_CORES=${CONTENDED_CORES:-0.3}
FIT_ONLY=${FIT_ONLY:-0}

NS0=moe-ns0 NS1=moe-ns1          # the two "nodes"
DEV0=moe-v0 DEV1=moe-v1          # the data link between them (veth pair)
NET=10.231.0                     # its subnet (exists only inside the namespaces)
BR=moe-br CTL=10.231.9           # control bridge in the root namespace (PMIx only, see below)
CDEV0=moe-c0 CDEV1=moe-c1        # root-side ends of the control veths; moe-c0n/moe-c1n inside

log() { printf '[network_study] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# The mpirun arguments of each MPI variant.
variant_args() {
  case $1 in
    default) echo "" ;;
    links2) echo "--mca btl_tcp_links 2" ;;
    *) die "unknown variant '$1' (default, links2)" ;;
  esac
}


# --- checks ---------------------------------------------------------------------------------------
PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import numpy' 2>/dev/null; then PY=$(command -v "$p"); break; fi
done
[ -n "$PY" ] || die "needs a python3 with numpy"
RESULTS="$OUT/results.jsonl"

analyse() { "$PY" - "$RESULTS" "$OUT" configs/default-moe.json "$CONTENDED_CORES" <<'PYEOF'
import json, math, os, sys
import numpy as np

res_path, out_dir, cfg_path, contended = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
recs = [json.loads(l) for l in open(res_path) if l.strip()]
ep = [r for r in recs if r["kind"] == "ep2"]
singles = [r for r in recs if r["kind"] == "single"]
if not ep:
    sys.exit("no expert-parallel results in " + res_path)
variants = []
for r in ep:
    r.setdefault("variant", "default")
    if r["variant"] not in variants:
        variants.append(r["variant"])

def rate_bps(rate):  # tc units: bit/s; None = unlimited
    if rate == "unlimited":
        return None
    for unit, mul in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if rate.endswith(unit):
            return float(rate[: -len(unit)]) * mul
    raise ValueError(rate)
def mean(xs):
    return sum(xs) / len(xs)
def key(r):
    return (variants.index(r["variant"]), r["batch"], -(rate_bps(r["rate"]) or 1e30), r.get("repeat", 1))
def busy(r):  # cores taken from the run by other processes and by the hypervisor (steal), on average
    return r.get("foreign_cores", 0.0) + r.get("steal_cores", 0.0)
def clean(r):
    return busy(r) <= contended
def mark(r):
    return "" if clean(r) else " (contended)"
def clean_mean(rs, f):  # over the uncontended runs; over all of them if none is
    xs = [f(r) for r in rs if clean(r)] or [f(r) for r in rs]
    return mean(xs) if xs else None

md = []  # the markdown report
def both(s=""):
    print(s)
    md.append(s)

# ---- measured points ----
both("## Measured points (2 ranks, 1 thread each, expert parallelism 2, one rank per namespace)")
both()
both("| MPI variant | batch (seq x 128) | link | run | step s | tokens/s | time in collectives r0 / r1 | MB sent per rank per step | veth bytes / bench bytes | tbf drops, TCP retransmits | cores taken by other processes + steal |")
both("|---|---:|---|---:|---:|---:|---|---:|---:|---|---:|")
for r in sorted(ep, key=key):
    b = r["bench"]
    both("| %s | %d | %s | %d | %.3f | %.0f | %.0f%% / %.0f%% | %.2f | %.3f | %d, %d | %.2f + %.2f%s |" % (
        r["variant"], r["batch"], r["rate"], r.get("repeat", 1), b["step_s"], b["tokens_per_s"],
        100 * b["comm_share_per_rank"][0], 100 * b["comm_share_per_rank"][1],
        max(b["bytes_sent_per_rank_per_step"]) / 1e6, r["veth_over_bench"], sum(r.get("tbf_drops", [0])),
        sum(r.get("tcp_retrans_segs", [0])), r.get("foreign_cores", 0.0), r.get("steal_cores", 0.0), mark(r)))
both()
# The same, one row per configuration (the repeats side by side), with the command that reruns it.
both("| MPI variant | batch | link | step s (each run) | tokens/s (mean) | time in collectives (mean of ranks and runs) | MB sent per rank per step | reproduce with |")
both("|---|---:|---|---|---:|---:|---:|---|")
seen = []
for r in sorted(ep, key=key):
    cfg_key = (r["variant"], r["batch"], r["rate"])
    if cfg_key in seen:
        continue
    seen.append(cfg_key)
    rs = [x for x in ep if (x["variant"], x["batch"], x["rate"]) == cfg_key]
    both("| %s | %d | %s | %s | %.0f | %.0f%% | %.2f | `%s` |" % (
        r["variant"], r["batch"], r["rate"],
        " / ".join("%.3f%s" % (x["bench"]["step_s"], "" if clean(x) else "*") for x in rs),
        mean([x["bench"]["tokens_per_s"] for x in rs]),
        100 * mean([mean(x["bench"]["comm_share_per_rank"]) for x in rs]),
        max(r["bench"]["bytes_sent_per_rank_per_step"]) / 1e6,
        "VARIANTS=%s RATES=%s BATCHES=%d STEPS=%d REPEATS=1 REFERENCE=0 bash scripts/network_study.sh" % (
            r["variant"], r["rate"], r["batch"], r.get("steps", 5))))
both()
both("(* contended run)")
both()
if singles:
    both("Single-process references (root namespace, no MPI; this bench reports the best of its rounds, "
         "the 2-rank bench the median step):")
    both()
    both("| batch (seq x 128) | threads | run | step s | tokens/s | cores taken by other processes + steal |")
    both("|---:|---:|---:|---:|---:|---:|")
    for r in sorted(singles, key=lambda r: (r["batch"] * r["threads"], -r["threads"], r.get("repeat", 1))):
        both("| %d | %d | %d | %.3f | %.0f | %.2f + %.2f%s |" % (r["batch"], r["threads"], r.get("repeat", 1), r["bench"]["step_s"],
              r["bench"]["tokens_per_s"], r.get("foreign_cores", 0.0), r.get("steal_cores", 0.0), mark(r)))
    both()
    both("| batch | 2 ranks, unlimited link (%s), tokens/s | 1 process, 2 threads, tokens/s | ratio | 1 process, 1 thread, half the batch, tokens/s |" % variants[0])
    both("|---:|---:|---:|---:|---:|")
    tps = lambda r: r["bench"]["tokens_per_s"]
    for bt in sorted({r["batch"] for r in ep}):
        u = clean_mean([r for r in ep if r["batch"] == bt and r["rate"] == "unlimited" and r["variant"] == variants[0]], tps)
        s2 = clean_mean([r for r in singles if r["batch"] == bt and r["threads"] == 2], tps)
        s1 = clean_mean([r for r in singles if r["batch"] == bt // 2 and r["threads"] == 1], tps)
        if u and s2:
            both("| %d | %.0f | %.0f | %.2f | %s |" % (bt, u, s2, u / s2, "%.0f" % s1 if s1 else "-"))
    both()
    both("(means over the uncontended runs)")
    both()

# ---- what a step sends, and how many collectives it makes (from the code) ----
cfg = json.load(open(cfg_path))
d, F, L, E, k = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["num_local_experts"], cfg["num_experts_per_tok"]
H, Hkv, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
T = cfg["max_position_embeddings"]
hd = d // H
attn = d * hd * H * 2 + d * hd * Hkv * 2
P_exp = L * E * 3 * d * F                      # expert weights: sharded over the expert group
P_rep = V * d * (1 if cfg.get("tie_word_embeddings") else 2) + L * (attn + 2 * d + E * d) + d  # replicated

def collectives(W, R):
    """[(group size, count)] of one bench step: router_topk.cpp, expert_bank_parallel.cpp,
    decoder_lm.cpp, gradient_sync.cpp, cmd_bench_model.cpp (every MoE layer is sparse here)."""
    D = W // R
    c = [(W, 1 * L)]           # per MoE layer, router over the world: one all_gather_n (MPI_Allgather)
                               # of a record of k*E picks + E+4 sums (doubles)
    if R > 1:
        c += [(R, 5 * L)]      # expert bank: counts all-to-all + 2 row all-to-alls forward, 2 backward
    c += [(W, 1)]              # loss: all_reduce_sum of 2 doubles (small sums: one all-gather)
    c += [(W, 2)]              # replicated gradients: one packed all_reduce_sum over the world
    if D > 1:
        c += [(D, 2)]          # expert gradients: one packed all_reduce_sum over the replica group
    if R > 1:
        c += [(R, 1)]          # gradient norm: sum of the shards' squares over the expert group (one all-gather)
    c += [(W, 1)]              # the bench's barrier that ends the timed step
    return [(g, n) for g, n in c if g > 1]
def n_coll(W, R):
    return sum(n for g, n in collectives(W, R))
def log2c(g):
    return math.ceil(math.log2(g)) if g > 1 else 0
def ar_bytes(n, G):  # bytes one rank sends in Communicator::all_reduce_sum of n floats over G ranks
    if G == 1:
        return 0
    chunk = -(-n // G)   # reduce-scatter: the other ranks' slices (all-to-all); all-gather: its slice to G-1
    return 4 * ((n - chunk) + (G - 1) * chunk)
def small_bytes(W, R):  # router statistics, loss, gradient norm: bytes one rank sends
    s = L * 8 * (k * E + E + 4) * (W - 1)   # router: its record of k*E + E+4 doubles to each other rank
    return s + 2 * 8 * (W - 1) + (2 * 8 * (R - 1) if R > 1 else 0)
N2 = n_coll(2, 2)

# The shaper's token bucket (set_rate below: burst = max(64 KiB, 1 ms at the rate)) lets a
# transfer that follows idle time pass its first `burst` bytes at once; only the rest waits for the
# rate. A step's transfers that follow compute: the 4 row exchanges of each MoE layer and the
# gradient all-reduce's first half. Between two of them the bucket refills at the rate for about
# compute / (their number). This credit describes the tbf measurement, not a network: the
# predictions below use none.
def burst_credit_bytes(r, compute_s):
    bps = rate_bps(r["rate"])
    if bps is None or os.environ.get("BURST_CREDIT", "1") == "0":
        return 0.0
    burst = max(65536.0, bps / 8 / 1000)
    sent = max(r["bench"]["bytes_sent_per_rank_per_step"])
    ar = ar_bytes(P_rep, 2)
    a2a = max(0.0, sent - ar - small_bytes(2, 2))
    transfers = [a2a / (4 * L)] * (4 * L) + [ar / 2]
    refill = bps / 8 * compute_s / len(transfers)
    return sum(min(t, burst, refill) for t in transfers)

# ---- fit, per MPI variant ----
both("## Fitted cost model")
both()
both("step_s = compute_s(batch) + N_coll x alpha + (bytes_per_rank_per_step - burst_credit) / (eta x link_rate)")
both()
both("- compute_s(batch): the unlimited run's step x (1 - the smaller of the two ranks' shares in collectives)")
both("- burst_credit: the bytes tbf's bucket lets through at once, min(transfer, burst, refill) summed over the "
     "step's 4 x %d row exchanges and the gradient all-reduce's first half (none on a real link)" % L)
both("- N_coll = %d collectives per step at W = 2, R = 2 (counted from the code); bytes: the larger rank's count" % N2)
both("- alpha, eta: weighted least squares (relative errors) over the uncontended runs of each MPI variant "
     "(contended: other processes and the hypervisor's steal took more than %.2f cores on average during the run)" % contended)
both()
fits = {}
for v in variants:
    E_ = [r for r in ep if r["variant"] == v]
    comp = {}
    for bt in sorted({r["batch"] for r in E_}):
        u = [r for r in E_ if r["batch"] == bt and r["rate"] == "unlimited"]
        if u:
            comp[bt] = clean_mean(u, lambda r: r["bench"]["step_s"] * (1 - min(r["bench"]["comm_share_per_rank"])))
    allpts = [r for r in E_ if r["batch"] in comp]
    pts = [r for r in allpts if clean(r)]
    note = "%d uncontended runs of %d" % (len(pts), len(allpts))
    if len(pts) < 3:
        pts, note = allpts, "all %d runs (fewer than 3 uncontended)" % len(allpts)
    if len(pts) < 3:
        both("%s: not enough points to fit" % v)
        continue
    def design(r):
        bps = rate_bps(r["rate"])
        if bps is None:
            return [N2, 0.0]
        wire = max(r["bench"]["bytes_sent_per_rank_per_step"]) - burst_credit_bytes(r, comp[r["batch"]])
        return [N2, wire / (bps / 8)]
    A = np.array([design(r) for r in pts])
    y = np.array([r["bench"]["step_s"] - comp[r["batch"]] for r in pts])
    w = np.array([1 / r["bench"]["step_s"] for r in pts])
    sol, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
    alpha, eta = float(sol[0]), 1 / float(sol[1])
    # standard errors from the weighted residuals
    Aw, yw = A * w[:, None], y * w
    dof = max(1, len(pts) - 2)
    cov = float(((yw - Aw @ sol) ** 2).sum()) / dof * np.linalg.inv(Aw.T @ Aw)
    se_alpha, se_eta = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1]) / float(sol[1]) ** 2
    both("### MPI variant `%s` (%s)" % (v, E_[0].get("mpi_extra") or "Open MPI defaults"))
    both()
    both("alpha = %.0f +- %.0f us per collective, eta = %.3f +- %.3f (standard errors); fitted on %s" % (
        alpha * 1e6, se_alpha * 1e6, eta, se_eta, note))
    both()
    both("| batch | link | run | compute s | measured step s | predicted step s | error |")
    both("|---:|---|---:|---:|---:|---:|---:|")
    errs, errs_all = [], []
    for r in sorted(allpts, key=key):
        m = r["bench"]["step_s"]
        p = comp[r["batch"]] + float(np.array(design(r)) @ sol)
        e = (p - m) / m
        errs_all.append(e)
        if clean(r):
            errs.append(e)
        both("| %d | %s | %d | %.3f | %.3f | %.3f | %+.1f%%%s |" % (r["batch"], r["rate"], r.get("repeat", 1), comp[r["batch"]], m, p, 100 * e, mark(r)))
    both()
    if errs:
        worst = max(abs(e) for e in errs)
        both("largest error on the uncontended runs %.1f%% (target 25%%: %s); on all runs %.1f%%" % (
            100 * worst, "met" if worst <= 0.25 else "NOT met", 100 * max(abs(e) for e in errs_all)))
    both()
    fits[v] = {"alpha_s": alpha, "eta": eta, "alpha_se_s": se_alpha, "eta_se": se_eta, "compute_s": comp, "errors_uncontended": errs, "errors_all": errs_all,
               "mpi_extra": E_[0].get("mpi_extra", "")}
if not fits:
    both("No fit: each batch needs an unlimited run, and a variant at least 3 runs (RATES must include unlimited).")
    open(out_dir + "/report.md", "w").write("\n".join(md) + "\n")
    json.dump({"fits": {}}, open(out_dir + "/fit.json", "w"))
    sys.exit(0)

# ---- predictions ----
# Compute per rank against tokens per rank, over every variant's unlimited runs.
cpts = sorted((bt * T / 2, c) for f in fits.values() for bt, c in f["compute_s"].items())
n_rank = np.array([p[0] for p in cpts])
tc = np.array([p[1] for p in cpts])
if len(set(n_rank)) >= 2:
    a_tok, c_fix = (float(x) for x in np.polyfit(n_rank, tc, 1))
    if c_fix < 0:  # noise: a rate through the origin instead
        a_tok, c_fix = float(tc.sum() / n_rank.sum()), 0.0
else:
    a_tok, c_fix = float(tc[0] / n_rank[0]), 0.0
params2 = P_rep + P_exp / 2
def t_compute(n, R):  # one node's compute for n tokens; the fixed part scales with the parameters held
    return a_tok * n + c_fix * (P_rep + P_exp / R) / params2
# All-to-all bytes per token per rank at R = 2, measured: the rank's bytes minus the all-reduces and
# the small statistics (unlimited runs of the largest batch, every variant).
big = max(bt for bt in {r["batch"] for r in ep})
ref = [r for r in ep if r["rate"] == "unlimited" and r["batch"] == big]
vb2 = clean_mean(ref, lambda r: max(r["bench"]["bytes_sent_per_rank_per_step"]))
a2a_tok = (vb2 - ar_bytes(P_rep, 2) - small_bytes(2, 2)) / (big * T / 2)
a2a_uniform = 4 * L * k * d * 4 * 0.5   # 4 row all-to-alls per layer; half the rows leave at R = 2
both("Compute per rank: %.1f us per token + %.1f ms per step (line through the unlimited runs' compute); "
     "all-to-all %.0f bytes per token per rank at R = 2 (uniform routing: %.0f); %d replicated and %d expert parameters." % (
         a_tok * 1e6, c_fix * 1e3, a2a_tok, a2a_uniform, P_rep, P_exp))
both()

def predict(W, n, bw_bps, fit):
    R = min(W, E)
    while E % R or W % R:
        R -= 1
    D = W // R
    a2a = a2a_tok * n * ((R - 1) / R) / 0.5 if R > 1 else 0.0
    vol = a2a + ar_bytes(P_rep, W) + ar_bytes(P_exp // R, D) + small_bytes(W, R)
    lat = fit["alpha_s"] * sum(m * log2c(g) for g, m in collectives(W, R))
    tc_ = t_compute(n, R)
    return R, D, vol, tc_, lat, tc_ + lat + vol / (fit["eta"] * bw_bps / 8)

bws = [("1 Gbit/s", 1e9), ("10 Gbit/s", 10e9)]
cols = [(v, name, bw) for v in fits for name, bw in bws]
pred_out = []
for title, weak in (("weak scaling, 16 sequences x 128 tokens = 2048 tokens per node", True),
                    ("strong scaling, a global batch of 64 x 128 = 8192 tokens", False)):
    both("## Prediction, " + title)
    both()
    both("| nodes | R (expert shards) | D (replicas) | tokens per node | MB sent per node per step | compute s | "
         "latency ms (alpha of %s), log2 G (G-1) | " % cols[0][0] + " | ".join("%s @%s: step s, efficiency" % (v, name) for v, name, _ in cols) + " |")
    both("|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(cols))
    for W in (2, 4, 8, 16, 32, 64):
        n = 2048 if weak else 8192 / W
        cells = []
        for v, name, bw in cols:
            R, D, vol, tc_, lat, t = predict(W, n, bw, fits[v])
            eff = t_compute(n, 1) / t if weak else t_compute(8192, 1) / (W * t)
            cells.append("%.3f, %.0f%%" % (t, 100 * eff))
            pred_out.append({"scenario": "weak" if weak else "strong", "variant": v, "nodes": W, "link": name, "R": R,
                             "D": D, "tokens_per_node": n, "bytes_per_node": vol, "compute_s": tc_,
                             "latency_s": lat, "step_s": t, "efficiency": eff})
        f0 = fits[cols[0][0]]
        lin = f0["alpha_s"] * sum(m * (g - 1) for g, m in collectives(W, R))
        both("| %d | %d | %d | %.0f | %.2f | %.3f | %.1f (%.1f) | %s |" % (
            W, R, D, n, vol / 1e6, tc_, 1e3 * f0["alpha_s"] * sum(m * log2c(g) for g, m in collectives(W, R)),
            1e3 * lin, " | ".join(cells)))
    both()

json.dump({"fits": fits, "n_coll_w2": N2, "compute_per_token_s": a_tok, "compute_fixed_s": c_fix,
           "a2a_bytes_per_token_r2": a2a_tok, "P_rep": P_rep, "P_exp": P_exp, "predictions": pred_out},
          open(out_dir + "/fit.json", "w"), indent=1)
open(out_dir + "/report.md", "w").write("\n".join(md) + "\n")
PYEOF
}

if [ "$FIT_ONLY" = 1 ]; then
  [ -s "$RESULTS" ] || die "FIT_ONLY=1 but there is no $RESULTS"
  analyse
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces and tc)"
for c in ip tc mpirun timeout; do command -v "$c" >/dev/null 2>&1 || die "'$c' not found"; done
[ -x "$MOE" ] || die "no moe binary at $MOE (build it or set MOE=...)"
case " $BATCHES " in *[!0-9\ ]*) die "BATCHES must be numbers" ;; esac
for b in $BATCHES; do [ $((b % 2)) = 0 ] || die "batch $b is not even (2 ranks split it)"; done
for v in $VARIANTS; do variant_args "$v" >/dev/null; done
for r in $RATES; do
  [ "$r" = unlimited ] || [[ $r =~ ^[0-9]+(kbit|mbit|gbit)$ ]] || die "rate '$r': unlimited or a whole number with kbit, mbit or gbit"
done
if ip -4 -o addr show | grep -q -e " $NET\." -e " $CTL\."; then
  die "the subnets $NET.0/24 or $CTL.0/24 are already used in the root namespace"
fi

# --- setup and cleanup ----------------------------------------------------------------------------
WORK="" CHILD=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
    kill -TERM "$CHILD" 2>/dev/null || true   # timeout forwards it to mpirun, which stops the ranks
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$CHILD" 2>/dev/null || break; sleep 1; done
    kill -KILL "$CHILD" 2>/dev/null || true
  fi
  for ns in "$NS0" "$NS1"; do
    if ip netns list 2>/dev/null | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  for dev in "$CDEV0" "$CDEV1" "$BR"; do ip link del "$dev" 2>/dev/null || true; done
  [ -n "$WORK" ] && rm -rf "$WORK"
  log "cleaned up (namespaces, links, temp dir)"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

for ns in "$NS0" "$NS1"; do
  if ip netns list | grep -qw "$ns"; then log "removing $ns left by an earlier run"; ip netns del "$ns"; fi
done
for dev in "$CDEV0" "$CDEV1" "$BR"; do ip link del "$dev" 2>/dev/null || true; done

WORK=$(mktemp -d /tmp/moe-network-study.XXXXXX)
cp "$MOE" "$WORK/moe"
BIN="$WORK/moe"
mkdir -p "$OUT/logs"
[ -f "$RESULTS" ] && mv "$RESULTS" "$RESULTS.prev"
: >"$RESULTS"

log "creating $NS0, $NS1, veth $DEV0 <-> $DEV1 ($NET.1 <-> $NET.2) and the control bridge $BR ($CTL.1)"
ip netns add "$NS0"
ip netns add "$NS1"
ip link add "$DEV0" type veth peer name "$DEV1"
ip link set "$DEV0" netns "$NS0"
ip link set "$DEV1" netns "$NS1"
ip -n "$NS0" addr add "$NET.1/24" dev "$DEV0"
ip -n "$NS1" addr add "$NET.2/24" dev "$DEV1"
# Open MPI 4.1 here uses PMIx 4.2, whose only transport to mpirun is TCP on 127.0.0.1: a process in
# another network namespace cannot reach it (MPI_Init fails: "OPAL ERROR: Unreachable"). So mpirun's
# PMIx server listens on a bridge in the root namespace that each namespace reaches by its own veth;
# only PMIx (start-up, modex, finalize) uses it; the MPI data goes over DEV0 <-> DEV1.
ip link add "$BR" type bridge
ip addr add "$CTL.1/24" dev "$BR"
ip link set "$BR" up
i=0
for ns in "$NS0" "$NS1"; do
  root_end=$([ $i = 0 ] && echo "$CDEV0" || echo "$CDEV1")
  ip link add "$root_end" type veth peer name "${root_end}n"
  ip link set "${root_end}n" netns "$ns"
  ip link set "$root_end" master "$BR"
  ip link set "$root_end" up
  ip -n "$ns" addr add "$CTL.$((i + 2))/24" dev "${root_end}n"
  ip -n "$ns" link set "${root_end}n" up
  ip -n "$ns" link set lo up
  i=$((i + 1))
done
ip -n "$NS0" link set "$DEV0" up
ip -n "$NS1" link set "$DEV1" up

ctr() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
tbf_drops() { tc -s -n "$1" qdisc show dev "$2" | awk '/dropped/ {gsub(",", "", $7); print $7; f=1} END {if (!f) print 0}'; }
retrans() { ip netns exec "$1" awk '/^Tcp:/ {if (h) print $13; else h = 1}' /proc/net/snmp; }

# CPU accounting in clock ticks: "busy" = user+nice+system of the whole machine, "ours" = the CPU
# of this script's finished children (the runs), "steal" = time the hypervisor took.
cpu_now() {
  local busy steal ours
  read -r busy steal < <(awk '/^cpu / {print $2 + $3 + $4, $9}' /proc/stat)
  ours=$(awk '{print $16 + $17}' "/proc/$$/stat")
  echo "$busy $steal $ours $(date +%s.%N)"
}
# Cores that other processes used between two cpu_now snapshots.
foreign_cores() {
  awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); dt = y[4] - x[4]; if (dt <= 0) dt = 1e-9
    f = ((y[1] - x[1]) - (y[3] - x[3])) / hz / dt; if (f < 0) f = 0
    printf "%.3f %.3f\n", f, (y[2] - x[2]) / hz / dt }'
}
WAITED=0
quiet_gate() {
  local start=$SECONDS a b f
  while :; do
    a=$(cpu_now); sleep 2; b=$(cpu_now)
    f=$(foreign_cores "$a" "$b" | awk '{print $1 + $2}')
    awk -v f="$f" -v q="$QUIET_CORES" 'BEGIN {exit !(f <= q)}' && break
    if [ $((SECONDS - start)) -ge "$QUIET_WAIT" ] || [ "$WAITED" -ge "$QUIET_BUDGET" ]; then
      log "  machine busy (other processes and steal take $f cores): running anyway"; break
    fi
    [ $((SECONDS - start)) -lt 3 ] && log "  waiting for other processes to quieten ($f cores taken)"
    sleep 3
    WAITED=$((WAITED + 5))
  done
}

# tbf on both ends (each end shapes what it sends): burst = max(64 KiB, 1 ms at the rate).
set_rate() {
  local rate=$1 ns dev num bps burst
  for pair in "$NS0:$DEV0" "$NS1:$DEV1"; do
    ns=${pair%%:*} dev=${pair#*:}
    tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null || true
    [ "$rate" = unlimited ] && continue
    num=${rate%%[a-z]*}
    case $rate in
      *gbit) bps=$((num * 1000000000)) ;;
      *mbit) bps=$((num * 1000000)) ;;
      *kbit) bps=$((num * 1000)) ;;
      *) die "rate '$rate': use kbit, mbit or gbit" ;;
    esac
    burst=$((bps / 8 / 1000))
    [ "$burst" -lt 65536 ] && burst=65536
    tc -n "$ns" qdisc add dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
  done
}

# bounded LOG CMD...: runs CMD (output to LOG) in the background under timeout and waits, so that a
# signal reaches the trap at once; returns the command's status.
bounded() {
  local out=$1; shift
  timeout -k 10 "$RUN_TIMEOUT" "$@" >"$out" 2>&1 &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

last_json() { grep '^{' "$1" | tail -n 1; }

run_single() {  # batch threads
  local b=$1 th=$2 logf="$OUT/logs/single-b$1-t$2-r$REP.log"
  local args=(bench train --threads "$th" --batch-size "$b" --steps "$STEPS" --json)
  log "single process: batch $b, $th thread(s)"
  quiet_gate
  local c0 c1 fs
  c0=$(cpu_now)
  bounded "$logf" "$BIN" "${args[@]}" || die "single-process run failed, see $logf"
  c1=$(cpu_now)
  fs=$(foreign_cores "$c0" "$c1")
  printf '{"kind":"single","repeat":%d,"batch":%d,"threads":%d,"foreign_cores":%s,"steal_cores":%s,"command":"moe %s","bench":%s}\n' \
    "$REP" "$b" "$th" "${fs% *}" "${fs#* }" "${args[*]}" "$(last_json "$logf")" >>"$RESULTS"
}

run_ep() {  # variant batch rate
  local variant=$1; shift
  local b=$1 rate=$2 logf="$OUT/logs/ep2-$variant-b$1-$2-r$REP.log" extra extra_args
  extra="$(variant_args "$variant") $MPI_EXTRA"
  read -r -a extra_args <<<"$extra"
  local args=(bench train --expert-parallel 2 --threads 1 --batch-size "$b" --steps "$STEPS" --json)
  # shellcheck disable=SC2054  # "self,tcp" is one MCA value
  local mpi=(mpirun -q --allow-run-as-root --bind-to none
             --mca pml ob1 --mca btl self,tcp --mca btl_tcp_if_include "$NET.0/24"
             --mca oob_tcp_if_include "$CTL.0/24" --mca mpi_yield_when_idle 1 "${extra_args[@]}"
             -np 1 ip netns exec "$NS0" "$BIN" "${args[@]}" : -np 1 ip netns exec "$NS1" "$BIN" "${args[@]}")
  set_rate "$rate"
  quiet_gate
  local tx0 tx1 rx0 lo0 lo1 c0 c1 rt0 rt1 cpu0 cpu1 fs
  tx0=$(ctr "$NS0" "$DEV0" tx_bytes) tx1=$(ctr "$NS1" "$DEV1" tx_bytes) rx0=$(ctr "$NS0" "$DEV0" rx_bytes)
  lo0=$(ctr "$NS0" lo tx_bytes) lo1=$(ctr "$NS1" lo tx_bytes) c0=$(ctr "$NS0" "${CDEV0}n" tx_bytes) c1=$(ctr "$NS1" "${CDEV1}n" tx_bytes)
  rt0=$(retrans "$NS0") rt1=$(retrans "$NS1")
  log "2 ranks over the veth at $rate: batch $b, MPI variant $variant"
  local t0=$SECONDS
  cpu0=$(cpu_now)
  PMIX_MCA_ptl_tcp_remote_connections=1 PMIX_MCA_ptl_tcp_if_include="$CTL.0/24" \
    bounded "$logf" "${mpi[@]}" || die "mpirun failed or timed out at $rate, batch $b: see $logf"
  cpu1=$(cpu_now)
  fs=$(foreign_cores "$cpu0" "$cpu1")
  local wall=$((SECONDS - t0)) j
  j=$(last_json "$logf")
  [ -n "$j" ] || die "no JSON line in $logf"
  local d0 d1 drx l0 l1 k0 k1
  d0=$(($(ctr "$NS0" "$DEV0" tx_bytes) - tx0)) d1=$(($(ctr "$NS1" "$DEV1" tx_bytes) - tx1))
  drx=$(($(ctr "$NS0" "$DEV0" rx_bytes) - rx0))
  l0=$(($(ctr "$NS0" lo tx_bytes) - lo0)) l1=$(($(ctr "$NS1" lo tx_bytes) - lo1))
  k0=$(($(ctr "$NS0" "${CDEV0}n" tx_bytes) - c0)) k1=$(($(ctr "$NS1" "${CDEV1}n" tx_bytes) - c1))
  rt0=$(($(retrans "$NS0") - rt0)) rt1=$(($(retrans "$NS1") - rt1))
  local dr0 dr1
  dr0=$(tbf_drops "$NS0" "$DEV0") dr1=$(tbf_drops "$NS1" "$DEV1")
  # Bytes the bench counted in all its steps (2 warm-up + STEPS timed) vs what crossed the veth.
  local ratio
  ratio=$("$PY" -c 'import json,sys; j=json.loads(sys.argv[1]); b=j["bytes_sent_per_rank_per_step"][0]*(int(sys.argv[2])+2); print("%.4f" % (int(sys.argv[3])/b))' "$j" "$STEPS" "$d0")
  log "  step $(echo "$j" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print("%.3f s, %.0f tokens/s, comm %s" % (j["step_s"], j["tokens_per_s"], ["%.0f%%" % (100*x) for x in j["comm_share_per_rank"]]))'); veth tx $d0 / $d1 bytes = $ratio x the bench's count; control link $k0 / $k1 bytes; lo $l0 / $l1; tbf drops $dr0 / $dr1, TCP retransmissions $rt0 / $rt1; other processes ${fs% *} cores, steal ${fs#* } cores"
  "$PY" -c 'import sys; r=float(sys.argv[1]); sys.exit(0 if r > 0.9 else 1)' "$ratio" ||
    die "only $ratio of the bench's bytes crossed $DEV0: the traffic did not take the veth"
  printf '{"kind":"ep2","variant":"%s","repeat":%d,"rate":"%s","batch":%d,"steps":%d,"mpi_extra":"%s","foreign_cores":%s,"steal_cores":%s,"wall_s":%d,"veth_tx_bytes":[%d,%d],"veth_rx_bytes_ns0":%d,"veth_over_bench":%s,"control_tx_bytes":[%d,%d],"lo_tx_bytes":[%d,%d],"tbf_drops":[%d,%d],"tcp_retrans_segs":[%d,%d],"command":"%s","bench":%s}\n' \
    "$variant" "$REP" "$rate" "$b" "$STEPS" "${extra_args[*]}" "${fs% *}" "${fs#* }" "$wall" "$d0" "$d1" "$drx" "$ratio" "$k0" "$k1" "$l0" "$l1" "$dr0" "$dr1" "$rt0" "$rt1" \
    "VARIANTS=$variant RATES=$rate BATCHES=$b STEPS=$STEPS REPEATS=1 REFERENCE=0${MPI_EXTRA:+ MPI_EXTRA=\\\"$MPI_EXTRA\\\"} bash scripts/network_study.sh" "$j" >>"$RESULTS"
}

log "moe: $MOE; rates: $RATES; batches: $BATCHES; MPI variants: $VARIANTS; steps: $STEPS; repeats: $REPEATS; results: $RESULTS"
for REP in $(seq "$REPEATS"); do
  for b in $BATCHES; do
    if [ "$REFERENCE" = 1 ]; then
      run_single "$b" 2
      run_single $((b / 2)) 1
    fi
    for v in $VARIANTS; do
      for rate in $RATES; do run_ep "$v" "$b" "$rate"; done
    done
  done
done
set_rate unlimited
analyse
log "done in $SECONDS s ($WAITED s of it waiting for a quiet machine): $RESULTS, $OUT/fit.json, $OUT/report.md"
