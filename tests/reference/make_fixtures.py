#!/usr/bin/env python3
"""Regenerates the golden fixtures under tests/fixtures/golden/ (checked by
tests/model/golden_test.cpp): computed in float64 by the independent PyTorch reference
tests/reference/mixtral_reference.py and saved as F32 safetensors. Deterministic.

  /usr/bin/python3 tests/reference/make_fixtures.py [--out DIR]

See tests/fixtures/golden/README.md for the content of every file.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mixtral_reference as ref  # noqa: E402

DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "golden"))
F64 = torch.float64

# The margin between the k-th and (k+1)-th router probability of every token: float32 engines must
# select the same experts as this float64 reference.
MOE_BLOCK_MARGIN = 1e-3
MODEL_MARGIN = 1e-4


def topk_margin(logits, k):
    p = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True).values
    return float((p[:, k - 1] - p[:, k]).min()) if p.shape[1] > k else float("inf")


def moe_block_fixture(path, k, norm, seed, T=24, d=16, F=24, E=4, aux_coef=0.02, z_coef=0.001):
    """One MoE block: y = moe(x) (no residual); loss = sum(y * r) + aux_coef * aux + z_coef * z."""
    torch.manual_seed(seed)
    gate = torch.randn(E, d, dtype=F64) * 0.5
    w1 = torch.randn(E, F, d, dtype=F64) * 0.3
    w3 = torch.randn(E, F, d, dtype=F64) * 0.3
    w2 = torch.randn(E, d, F, dtype=F64) * 0.3
    r = torch.randn(T, d, dtype=F64)
    for attempt in range(1000):  # re-draw x until the selection is stable and every expert is used
        x = torch.randn(T, d, dtype=F64)
        logits = x @ gate.T
        used = torch.topk(logits, k, dim=-1).indices.unique().numel()
        if topk_margin(logits, k) > MOE_BLOCK_MARGIN and used == E:
            break
    else:
        raise RuntimeError("could not draw a stable x")
    leaves = [t.requires_grad_() for t in (x, gate, w1, w2, w3)]
    y, logits, topi = ref.moe_block(x, gate, w1, w3, w2, k, norm)
    aux, z = ref.router_losses(logits, topi, E)
    loss = (y * r).sum() + aux_coef * aux + z_coef * z
    dx, dgate, dw1, dw2, dw3 = torch.autograd.grad(loss, leaves)
    t = {"x": x, "gate": gate, "w1": w1, "w3": w3, "w2": w2, "r": r, "y": y,
         "aux": aux.reshape(1), "z": z.reshape(1), "loss": loss.reshape(1),
         "dx": dx, "dgate": dgate, "dw1": dw1, "dw2": dw2, "dw3": dw3}
    meta = {"top_k": k, "norm_topk_prob": "true" if norm else "false", "num_experts": E,
            "aux_coef": repr(aux_coef), "z_coef": repr(z_coef), "seed": seed,
            "made_by": "tests/reference/make_fixtures.py"}
    ref.write_safetensors(path, t, "f32", meta)
    counts = torch.bincount(topi.reshape(-1), minlength=E).tolist()
    return f"{os.path.basename(path)}: k={k} norm={norm} expert counts {counts} margin {topk_margin(logits, k):.2e} " \
           f"aux {float(aux):.6f} z {float(z):.6f} loss {float(loss):.6f}"


def model_fixture(d, cfg, seed, B=2, T=16):
    """config.json, model.safetensors (random, std 0.1) and expected.safetensors for a tiny model."""
    os.makedirs(d, exist_ok=True)
    moe = cfg.get("model_type") == "mixtral"
    # Weights from the seed; tokens re-drawn until every MoE layer's top-k selection has a margin.
    W64 = ref.random_weights(cfg, seed)
    W32 = {n: w.to(torch.float32).to(F64) for n, w in W64.items()}  # exactly what the F32 file holds
    torch.manual_seed(seed + 1)
    for attempt in range(1000):
        tokens = torch.randint(0, 256, (B, T))
        with torch.no_grad():
            _, router = ref.forward(cfg, W32, tokens)
        margin = min([topk_margin(lg, cfg["num_experts_per_tok"]) for lg, _ in router], default=float("inf"))
        if margin > MODEL_MARGIN:
            break
    else:
        raise RuntimeError("could not draw stable tokens")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    ref.write_safetensors(os.path.join(d, "model.safetensors"), W32, "f32", {"format": "pt"})
    W = {n: w.clone().requires_grad_() for n, w in W32.items()}
    logits, router = ref.forward(cfg, W, tokens)
    nll, aux, z, obj = ref.losses(cfg, logits, tokens, router)
    names = list(W)
    grads = torch.autograd.grad(obj, [W[n] for n in names])
    t = {"tokens": tokens.to(F64), "logits": logits, "loss": nll.reshape(1)}
    if moe:
        t.update({"aux": aux.reshape(1), "z": z.reshape(1)})
    t["objective"] = obj.reshape(1)
    t.update({"grad." + n: g for n, g in zip(names, grads)})
    ref.write_safetensors(os.path.join(d, "expected.safetensors"), t, "f32", {"made_by": "tests/reference/make_fixtures.py"})
    msg = f"{os.path.basename(d)}: loss {float(nll):.6f} objective {float(obj):.6f}"
    if moe:
        msg += f" aux {float(aux):.6f} z {float(z):.6f} top-k margin {margin:.2e}"
    return msg + f", {len(names)} parameter gradients"


BASE = {"vocab_size": 256, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False, "hidden_act": "silu"}
MIXTRAL = dict({"model_type": "mixtral", "architectures": ["MixtralForCausalLM"]}, **BASE,
               num_local_experts=4, num_experts_per_tok=2, router_aux_loss_coef=0.02, router_z_loss_coef=0.001)
MISTRAL = dict({"model_type": "mistral", "architectures": ["MistralForCausalLM"]}, **BASE)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    out = ap.parse_args().out
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    os.makedirs(out, exist_ok=True)
    print(moe_block_fixture(os.path.join(out, "moe_layer_k2.safetensors"), k=2, norm=True, seed=1))
    print(moe_block_fixture(os.path.join(out, "moe_layer_k1.safetensors"), k=1, norm=False, seed=2))
    print(model_fixture(os.path.join(out, "tiny_mixtral"), MIXTRAL, seed=10))
    print(model_fixture(os.path.join(out, "tiny_mistral_dense"), MISTRAL, seed=20))
    print("fixtures written to", out)


if __name__ == "__main__":
    main()
