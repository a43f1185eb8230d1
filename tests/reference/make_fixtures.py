#!/usr/bin/env python3
"""Regenerates the golden fixtures of tests/model/golden_test.cpp under tests/fixtures/golden/:
float64 PyTorch (tests/reference/mixtral_reference.py) saved as F32.

  /usr/bin/python3 tests/reference/make_fixtures.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mixtral_reference as ref  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "golden")


def moe_block(name, k, norm, seed):
    """One MoE block: y = sparse_moe(x); loss = sum(y * r) + aux_coef * aux + z_coef * z."""
    T, d, F, E = 24, 16, 24, 4
    aux_coef, z_coef = 0.02, 0.001
    g = torch.Generator().manual_seed(seed)
    while True:
        x = torch.randn(T, d, generator=g, dtype=torch.float64)
        gate = torch.randn(E, d, generator=g, dtype=torch.float64) * 0.5
        p = torch.softmax(x @ gate.T, -1).sort(-1, descending=True).values
        if (p[:, k - 1] - p[:, k]).min() > 1e-3:  # no near-tie at the top-k boundary
            break
    w1 = torch.randn(E, F, d, generator=g, dtype=torch.float64) * 0.3
    w3 = torch.randn(E, F, d, generator=g, dtype=torch.float64) * 0.3
    w2 = torch.randn(E, d, F, generator=g, dtype=torch.float64) * 0.3
    r = torch.randn(T, d, generator=g, dtype=torch.float64)
    leaves = [t.requires_grad_() for t in (x, gate, w1, w2, w3)]
    W = {"b.gate.weight": gate}
    for e in range(E):
        W[f"b.experts.{e}.w1.weight"] = w1[e]
        W[f"b.experts.{e}.w3.weight"] = w3[e]
        W[f"b.experts.{e}.w2.weight"] = w2[e]
    cfg = {"num_local_experts": E, "num_experts_per_tok": k, "norm_topk_prob": norm}
    stats = {"aux": [], "z": []}
    y = ref.sparse_moe(x.view(1, T, d), W, "b.", cfg, stats).view(T, d)
    aux, z = stats["aux"][0], stats["z"][0]
    loss = (y * r).sum() + aux_coef * aux + z_coef * z
    grads = torch.autograd.grad(loss, leaves)
    t = {"x": x, "gate": gate, "w1": w1, "w2": w2, "w3": w3, "r": r, "y": y, "aux": aux.reshape(1),
         "z": z.reshape(1), "loss": loss.reshape(1)}
    t.update({n: gr for n, gr in zip(["dx", "dgate", "dw1", "dw2", "dw3"], grads)})
    meta = {"top_k": str(k), "norm_topk_prob": "true" if norm else "false", "num_experts": str(E),
            "aux_coef": str(aux_coef), "z_coef": str(z_coef)}
    ref.write_safetensors(os.path.join(OUT, name), t, "f32", meta)


def tiny_model(name, cfg, seed):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    W = ref.random_weights(cfg, seed)
    ref.write_safetensors(os.path.join(d, "model.safetensors"), W, "f32")
    W = {n: w.clone().requires_grad_() for n, w in W.items()}
    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, 256, (2, 16), generator=g)
    logits, stats = ref.forward(cfg, W, tokens)
    nll, aux, z, obj = ref.objective(cfg, logits, tokens, stats)
    names = list(W)
    grads = torch.autograd.grad(obj, [W[n] for n in names])
    t = {"tokens": tokens.double(), "logits": logits, "loss": nll.reshape(1), "aux": aux.reshape(1),
         "z": z.reshape(1), "objective": obj.reshape(1)}
    t.update({"grad." + n: gr for n, gr in zip(names, grads)})
    ref.write_safetensors(os.path.join(d, "expected.safetensors"), t, "f32")


def main():
    os.makedirs(OUT, exist_ok=True)
    moe_block("moe_layer_k2.safetensors", 2, True, 1)
    moe_block("moe_layer_k1.safetensors", 1, False, 2)
    base = {"vocab_size": 256, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False, "hidden_act": "silu"}
    mixtral = dict(base, model_type="mixtral", architectures=["MixtralForCausalLM"], num_local_experts=4,
                   num_experts_per_tok=2, router_aux_loss_coef=0.02, router_z_loss_coef=0.001)
    mistral = dict(base, model_type="mistral", architectures=["MistralForCausalLM"])
    tiny_model("tiny_mixtral", mixtral, 10)
    tiny_model("tiny_mistral_dense", mistral, 20)
    print("fixtures written to", os.path.normpath(OUT))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
