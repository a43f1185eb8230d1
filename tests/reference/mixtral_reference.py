#!/usr/bin/env python3
"""An independent PyTorch implementation of the Hugging Face Mixtral / Mistral architecture, used as
the oracle of moe's golden tests. Written from the published semantics (transformers' modeling_mixtral),
not from moe's C++ code. Needs only Debian's python3-torch and python3-numpy.

Commands:
  eval --model DIR --data FILE [--context T] [--dtype float64|float32]
      The evaluation contract of `moe eval`: the file's bytes are cut into consecutive,
      non-overlapping windows of T tokens (default max_position_embeddings), the last possibly
      shorter; each window is evaluated on its own (positions restart at 0); every position but a
      window's last predicts the next byte. Prints {"tokens", "loss", "perplexity"} as the last line.
  make-checkpoint --out DIR --config CONFIG.json --seed S [--dtype f32|bf16|f16] [--shards N]
      Random weights with the Hugging Face tensor names, one file or N shards + index.

Auxiliary losses (moe's definitions, see docs/checkpoints.md): per MoE layer with T tokens, E experts
and top-k: f_i = (top-k choices that went to expert i) / (T k), P_i = mean router probability,
aux = E * sum_i f_i P_i; z = mean_t logsumexp(router logits_t)^2. objective = mean NLL
+ router_aux_loss_coef * mean_l aux_l + router_z_loss_coef * mean_l z_l.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# safetensors, in plain Python

_DT = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2)}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        np_dt, size = _DT[info["dtype"]]
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=np_dt)
        if info["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(arr.astype(np.float32).reshape(info["shape"]).copy())
    return out, header.get("__metadata__", {})


def write_safetensors(path, tensors, dtype="f32", metadata=None):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().to(torch.float32).contiguous().numpy()
        if dtype == "f32":
            b, dt = a.astype("<f4").tobytes(), "F32"
        elif dtype == "f16":
            b, dt = a.astype("<f2").tobytes(), "F16"
        elif dtype == "bf16":
            u = a.view(np.uint32).astype(np.uint64)
            r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
            b, dt = r.tobytes(), "BF16"
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    return off


def load_checkpoint(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            wm = json.load(f)["weight_map"]
        weights = {}
        for shard in sorted(set(wm.values())):
            w, _ = read_safetensors(os.path.join(d, shard))
            weights.update(w)
    else:
        weights, _ = read_safetensors(os.path.join(d, "model.safetensors"))
    return cfg, weights


# ---------------------------------------------------------------------------------------------
# the model


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_cos_sin(T, head_dim, theta, dtype):
    # As transformers computes it: float32 inv_freq, float32 angles, then cast.
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    t = torch.arange(T, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def attention(x, W, p, cfg):
    B, T, d = x.shape
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim") or d // H
    q = (x @ W[p + "q_proj.weight"].T).view(B, T, H, D).transpose(1, 2)
    k = (x @ W[p + "k_proj.weight"].T).view(B, T, Hkv, D).transpose(1, 2)
    v = (x @ W[p + "v_proj.weight"].T).view(B, T, Hkv, D).transpose(1, 2)
    cos, sin = rope_cos_sin(T, D, cfg.get("rope_theta", 10000.0), x.dtype)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = k.repeat_interleave(H // Hkv, dim=1)
    v = v.repeat_interleave(H // Hkv, dim=1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    s = s.masked_fill(mask, float("-inf"))
    a = torch.softmax(s, dim=-1) @ v
    a = a.transpose(1, 2).reshape(B, T, H * D)
    return a @ W[p + "o_proj.weight"].T


def swiglu(x, w_gate, w_up, w_down):
    return (torch.nn.functional.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


def sparse_moe(x, W, p, cfg, stats):
    """Mixtral block: softmax router, top-k, optional renormalisation, weighted SwiGLU experts."""
    B, T, d = x.shape
    h = x.reshape(-1, d)
    E = cfg["num_local_experts"]
    k = cfg["num_experts_per_tok"]
    logits = h @ W[p + "gate.weight"].T
    probs = torch.softmax(logits, dim=-1)
    topv, topi = torch.topk(probs, k, dim=-1)
    if cfg.get("norm_topk_prob", True):
        topv = topv / topv.sum(-1, keepdim=True)
    out = torch.zeros_like(h)
    for e in range(E):
        rows, slot = torch.where(topi == e)
        if rows.numel() == 0:
            continue
        y = swiglu(h[rows], W[f"{p}experts.{e}.w1.weight"], W[f"{p}experts.{e}.w3.weight"], W[f"{p}experts.{e}.w2.weight"])
        out = out.index_add(0, rows, y * topv[rows, slot].unsqueeze(-1))
    counts = torch.zeros(E, dtype=h.dtype)
    counts.index_add_(0, topi.reshape(-1), torch.ones(topi.numel(), dtype=h.dtype))
    f = counts / (h.shape[0] * k)
    P = probs.mean(0)
    stats["aux"].append(E * (f * P).sum())
    stats["z"].append(torch.logsumexp(logits, dim=-1).pow(2).mean())
    return out.view(B, T, d)


def forward(cfg, W, tokens):
    """tokens: LongTensor [B, T] -> logits [B, T, V], stats with per-layer aux and z losses."""
    eps = cfg.get("rms_norm_eps", 1e-6)
    x = W["model.embed_tokens.weight"][tokens]
    stats = {"aux": [], "z": []}
    moe = cfg.get("model_type", "mixtral") == "mixtral"
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = x + attention(rms_norm(x, W[p + "input_layernorm.weight"], eps), W, p + "self_attn.", cfg)
        hn = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        if moe:
            x = x + sparse_moe(hn, W, p + "block_sparse_moe.", cfg, stats)
        else:
            x = x + swiglu(hn, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"], W[p + "mlp.down_proj.weight"])
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight")
    if head is None:
        head = W["model.embed_tokens.weight"]
    return x @ head.T, stats


def objective(cfg, logits, tokens, stats):
    B, T, V = logits.shape
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))
    obj = nll
    if stats["aux"]:
        aux = torch.stack(stats["aux"]).mean()
        z = torch.stack(stats["z"]).mean()
        obj = nll + cfg.get("router_aux_loss_coef", 0.0) * aux + cfg.get("router_z_loss_coef", 0.0) * z
    else:
        aux = z = torch.zeros(())
    return nll, aux, z, obj


# ---------------------------------------------------------------------------------------------
# commands


def cmd_eval(args):
    cfg, W = load_checkpoint(args.model)
    dt = torch.float64 if args.dtype == "float64" else torch.float32
    W = {k: v.to(dt) for k, v in W.items()}
    data = open(args.data, "rb").read()
    T = args.context or cfg["max_position_embeddings"]
    windows = [data[s:s + T] for s in range(0, len(data), T)]
    total, count = 0.0, 0
    with torch.no_grad():
        full = [w for w in windows if len(w) == T]
        rest = [w for w in windows if len(w) != T]
        for group in [full[i:i + 16] for i in range(0, len(full), 16)] + [[w] for w in rest]:
            if len(group[0]) < 2:
                continue
            tok = torch.tensor([list(w) for w in group], dtype=torch.long)
            logits, _ = forward(cfg, W, tok)
            V = logits.shape[-1]
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), tok[:, 1:].reshape(-1), reduction="sum")
            total += float(nll)
            count += tok.shape[0] * (tok.shape[1] - 1)
    loss = total / count if count else 0.0
    print(json.dumps({"tokens": count, "loss": loss, "perplexity": math.exp(loss)}))


def random_weights(cfg, seed, std=0.1):
    g = torch.Generator().manual_seed(seed)
    d = cfg["hidden_size"]
    F = cfg["intermediate_size"]
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim") or d // H
    V = cfg["vocab_size"]

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * std

    def norm():
        return 1.0 + torch.randn(d, generator=g, dtype=torch.float64) * 0.1

    W = {"model.embed_tokens.weight": rnd(V, d)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        W[p + "input_layernorm.weight"] = norm()
        W[p + "self_attn.q_proj.weight"] = rnd(H * D, d)
        W[p + "self_attn.k_proj.weight"] = rnd(Hkv * D, d)
        W[p + "self_attn.v_proj.weight"] = rnd(Hkv * D, d)
        W[p + "self_attn.o_proj.weight"] = rnd(d, H * D)
        W[p + "post_attention_layernorm.weight"] = norm()
        if cfg.get("model_type", "mixtral") == "mixtral":
            W[p + "block_sparse_moe.gate.weight"] = rnd(cfg["num_local_experts"], d) * 5
            for e in range(cfg["num_local_experts"]):
                W[f"{p}block_sparse_moe.experts.{e}.w1.weight"] = rnd(F, d)
                W[f"{p}block_sparse_moe.experts.{e}.w3.weight"] = rnd(F, d)
                W[f"{p}block_sparse_moe.experts.{e}.w2.weight"] = rnd(d, F)
        else:
            W[p + "mlp.gate_proj.weight"] = rnd(F, d)
            W[p + "mlp.up_proj.weight"] = rnd(F, d)
            W[p + "mlp.down_proj.weight"] = rnd(d, F)
    W["model.norm.weight"] = norm()
    if not cfg.get("tie_word_embeddings", False):
        W["lm_head.weight"] = rnd(V, d)
    return W


def cmd_make_checkpoint(args):
    cfg = json.load(open(args.config))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    W = random_weights(cfg, args.seed)
    if args.shards <= 1:
        write_safetensors(os.path.join(args.out, "model.safetensors"), W, args.dtype, {"format": "pt"})
        return
    names = list(W)
    per = (len(names) + args.shards - 1) // args.shards
    wm, total = {}, 0
    for s in range(args.shards):
        fname = f"model-{s + 1:05d}-of-{args.shards:05d}.safetensors"
        part = {n: W[n] for n in names[s * per:(s + 1) * per]}
        total += write_safetensors(os.path.join(args.out, fname), part, args.dtype, {"format": "pt"})
        wm.update({n: fname for n in part})
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--context", type=int, default=0)
    e.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    m = sub.add_parser("make-checkpoint")
    m.add_argument("--out", required=True)
    m.add_argument("--config", required=True)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    m.add_argument("--shards", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(2)
    {"eval": cmd_eval, "make-checkpoint": cmd_make_checkpoint}[args.cmd](args)


if __name__ == "__main__":
    main()
