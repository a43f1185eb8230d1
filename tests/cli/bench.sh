#!/usr/bin/env bash
# Every `moe bench` subcommand runs at a tiny size and ends with one JSON line holding the figures
# docs/performance.md quotes. Smoke test only: no timing is judged here (benchmarks are not tests).
source "$(dirname "$0")/lib/common.sh"

last_json() { "$@" --json | tail -n 1; }

last_json "$MOE" bench moe-layer --d-model 64 --d-ff 64 --experts 4 --top-k 2 --tokens 256 --reps 2 >"$WORK/layer"
last_json "$MOE" bench moe-layer --d-model 64 --d-ff 64 --experts 4 --top-k 2 --tokens 256 --reps 2 --routing learned >"$WORK/learned"
last_json "$MOE" bench train --model-config "$SRC/tests/cli/data/tiny-moe.json" --batch-size 2 --context 16 --steps 2 >"$WORK/train"
last_json "$MOE" bench generate --model-config "$SRC/tests/cli/data/tiny-moe.json" --prompt 8 --tokens 8 >"$WORK/gen"
REF="/usr/bin/python3 $SRC/tests/reference/mixtral_reference.py"
$REF make-checkpoint --out "$WORK/qwen3" --config "$SRC/tests/cli/data/tiny-qwen3-moe.json" --seed 3 --dtype bf16 >/dev/null \
  || fail "writing a checkpoint"
last_json "$MOE" bench generate --model "$WORK/qwen3" --prompt 4 --tokens 8 --concurrency 3 --rounds 2 >"$WORK/genmodel"
last_json "$MOE" bench generate --model "$WORK/qwen3" --prompt 4 --tokens 8 --concurrency 2 --rounds 1 --weights f32 --cold >"$WORK/genmodel32"
last_json "$MOE" bench peer --experts 4096 --heads 2 --top-k 8 --key-dim 32 --d-model 32 --tokens 256 --brute-tokens 16 --reps 1 >"$WORK/peer"
last_json "$MOE" bench peer --no-layer --heads 1 --top-k 4 --key-dim 16 --tokens 64 --brute-tokens 4 --reps 1 >"$WORK/sweep"
python3 - "$WORK" <<'PY'
import json, sys, os
w = sys.argv[1]
j = {n: json.load(open(os.path.join(w, n))) for n in ["layer", "learned", "train", "gen", "genmodel", "peer", "sweep"]}
for n in ["layer", "learned"]:
    for key in ["fwd_tokens_per_s", "fwdbwd_tokens_per_s", "fwdbwd_gflops", "dense_fwdbwd_gflops", "ratio", "gemm_gflops"]:
        assert j[n][key] > 0, (n, key, j[n])
    l = j[n]
    assert abs(l["ratio"] - l["fwdbwd_gflops"] / l["dense_fwdbwd_gflops"]) < 1e-9, l  # the issue's definition
    assert abs(l["ratio_vs_gemm"] - l["fwdbwd_gflops"] / l["gemm_gflops"]) < 1e-9, l
    assert 0 <= l["share_outside_expert_gemms"] <= 1 and 0 <= l["share_outside_expert_bank"] <= 1, l
assert j["learned"]["routing"] == "learned"
for key in ["tokens_per_s", "mfu_vs_gemm", "mfu_vs_peak", "peak_rss_bytes", "memory_floor_bytes", "rss_over_floor"]:
    assert j["train"][key] > 0, (key, j["train"])
t = j["train"]
assert abs(t["mfu_vs_gemm"] - t["model_gflops"] / t["gemm_gflops"]) < 1e-9, t
for key in ["prefill_tokens_per_s", "decode_tokens_per_s", "weight_bytes_per_token", "decode_over_floor"]:
    assert j["gen"][key] > 0, (key, j["gen"])
g = j["genmodel"]
for key in ["bandwidth_gb_s", "batch1_decode_tokens_per_s", "concurrent_decode_tokens_per_s", "bandwidth_fraction", "concurrent_ratio"]:
    assert g[key] > 0, (key, g)
assert g["concurrency"] == 3 and g["tokens"] == 8 and g["rounds"] == 2 and g["cpu"], g
assert g["concurrent_mean_batch"] == 3, g  # the three requests decoded together
# tiny-qwen3-moe.json: layers 0 and 2 sparse (2 of 6 experts of 3 * 32 * 24), layer 1 dense (3 * 32 * 64);
# attention 2 * 32 * 16 * (4 + 2) + q/k norms 2 * 16, norms 2 * 32 per layer; final norm; LM head 256 * 32
attn = 2 * 32 * 16 * 6 + 2 * 16 + 2 * 32
active = 3 * attn + 2 * (6 * 32 + 2 * 3 * 32 * 24) + 3 * 32 * 64 + 32 + 256 * 32
assert g["active_params"] == active and g["active_params_config"] == g["active_params_loaded"], (active, g)
# The bf16 checkpoint's matrices are held as stored (2 bytes); norms and router gates in f32.
matrices = 3 * 2 * 32 * 16 * 6 + 2 * 2 * 3 * 32 * 24 + 3 * 32 * 64 + 256 * 32
assert g["weights"] == "stored" and g["active_bytes_per_token"] == 2 * matrices + 4 * (active - matrices), (matrices, g)
assert g["checkpoint_file_bytes"] > 2 * g["total_params"] and g["load_s"] >= 0 and g["first_token_s"] > 0, g
assert g["rss_after_runs_bytes"] > 0 and g["peak_rss_bytes"] > 0 and g["cold"] is False, g
g32 = json.load(open(os.path.join(w, "genmodel32")))
assert g32["weights"] == "f32" and g32["cold"] is True and g32["active_bytes_per_token"] == 4 * active, g32
assert g32["weight_bytes_in_memory"] == 4 * g32["total_params"] and g["weight_bytes_in_memory"] < g32["weight_bytes_in_memory"], (g, g32)
assert abs(g["bandwidth_fraction"] - g["active_bytes_per_token"] * g["batch1_decode_tokens_per_s"] / (g["bandwidth_gb_s"] * 1e9)) < 1e-9, g
assert abs(g["concurrent_ratio"] - g["concurrent_decode_tokens_per_s"] / g["batch1_decode_tokens_per_s"]) < 1e-9, g
# Routing counted per decode step: one request uses its 2 experts in each of the 2 sparse layers;
# 3 requests between 2 and 6 per layer. A step reads the non-expert weights and each used expert.
assert g["batch1_distinct_experts_per_step"] == 4, g
assert 4 <= g["concurrent_distinct_experts_per_step"] <= 12, g
assert abs(g["batch1_step_weight_bytes"] - g["active_bytes_per_token"]) < 1e-6, g
expert = 2 * 3 * 32 * 24
extra = (g["concurrent_distinct_experts_per_step"] - 4) * expert
assert abs(g["concurrent_step_weight_bytes"] - (g["active_bytes_per_token"] + extra)) < 1e-6, g
ceiling = 3 * g["batch1_step_weight_bytes"] / g["concurrent_step_weight_bytes"]
assert abs(g["concurrent_ratio_memory_bound_ceiling"] - ceiling) < 1e-9 and 1 < ceiling <= 3, g
p = j["peer"]
assert p["experts"] == 4096 and p["retrieval_us_per_token"] > 0 and p["brute_force_us_per_token"] > 0, p
assert abs(p["speedup"] - p["brute_force_us_per_token"] / p["retrieval_us_per_token"]) < 1e-9 * p["speedup"], p
assert p["agreement"] > 0.99, p  # the two methods return the same experts up to near-tie rounding
floor = 2 * p["experts"] * p["key_dim"] * p["heads"] / (p["fma_peak_gflops"] * 1e3)  # GEMM FLOPs at peak, in us
assert abs(p["brute_force_floor_us_per_token"] - floor) < 1e-9 * floor, p
assert abs(p["speedup_vs_floor"] - floor / p["retrieval_us_per_token"]) < 1e-9 * p["speedup_vs_floor"], p
assert p["layer_fwdbwd_tokens_per_s"] > 0 and p["fwd_gather_gb_s"] > 0 and p["bank_fwd_gather_gb_s"] > 0, p
s = j["sweep"]
assert [r["experts"] for r in s["sweep"]] == [4096, 16384, 65536, 262144, 1048576], s
assert "slope" in s and "layer_fwd_tokens_per_s" not in s, s
PY

# Bad settings: one clear line.
if "$MOE" bench peer --experts 5000 >"$WORK/out" 2>"$WORK/err"; then fail "--experts 5000 accepted"; fi
grep -q "perfect square" "$WORK/err" || { cat "$WORK/err"; fail "no clear error for --experts 5000"; }
if "$MOE" bench moe-layer --routing zipf >"$WORK/out" 2>"$WORK/err"; then fail "--routing zipf accepted"; fi
grep -q "routing" "$WORK/err" || { cat "$WORK/err"; fail "no clear error for --routing zipf"; }
expect_error "concurrency must be >= 1" "$MOE" bench generate --model "$WORK/qwen3" --concurrency 0
expect_error "must fit in the model's context" "$MOE" bench generate --model "$WORK/qwen3" --tokens 40
expect_error "need --model" "$MOE" bench generate --concurrency 2
echo OK
