#!/usr/bin/env python3
"""An independent PyTorch reference of the Hugging Face Mixtral / Mistral decoder, the oracle of
moe's golden tests. Written from the published semantics of transformers' MixtralForCausalLM and
MistralForCausalLM (and of the other families described below: Qwen2-MoE, Qwen3-MoE, OLMoE,
DeepSeek-V2, DeepSeek-V3), not from moe's C++ code. Needs only /usr/bin/python3 with Debian's python3-torch
and python3-numpy (no transformers, no safetensors package): the safetensors reader and writer
are here in plain Python.

Usage:
  mixtral_reference.py eval --model DIR (--data FILE | --ids IDS.json) [--context T]
                            [--dtype float64|float32] [--batch-size B] [--threads N]
      The evaluation contract of `moe eval`: the tokens are the file's bytes (token id = byte
      value), or the ids listed in IDS.json (a tokenizer's, each below vocab_size); they are cut into consecutive, non-overlapping windows of T tokens
      (default: config max_position_embeddings), the last possibly shorter; each window is
      evaluated on its own (positions restart at 0); every position but the last of a window
      predicts the next token of that window; loss = mean NLL in nats over all predicted positions.
      Windows of equal length are batched (B windows per forward pass; default chosen to keep the
      activations under ~512 MB). The last output line is one JSON object
      {"tokens": N, "loss": L, "perplexity": exp(L)} with N the number of predicted positions.

  mixtral_reference.py compare-logits --model DIR --data FILE --logits LOGITS.safetensors [--context T]
      The float64 logits of the file's first window against LOGITS.safetensors ("logits" [T, V],
      as `moe eval --logits` writes them); prints {"max_abs", "scale", "relative", "argmax_agree"}.

  mixtral_reference.py make-checkpoint --out DIR --config CONFIG.json --seed S
                            [--dtype f32|bf16|f16] [--shards N]
      Writes DIR/config.json (a byte copy of CONFIG.json) and random weights with the exact
      Hugging Face tensor names: every matrix N(0, 0.1^2), every norm weight 1 + 0.1 N(0, 1)
      (DeepSeek-V3's mlp.gate.e_score_correction_bias: N(0, 0.1^2), always stored F32, as in the
      published checkpoints, whatever --dtype says).
      One DIR/model.safetensors, or N shards model-0000i-of-0000N.safetensors plus
      model.safetensors.index.json {"metadata": {"total_size": bytes}, "weight_map": {name: file}}.

Model (per layer, working dtype float64 by default):
  h = x + o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),  n1 = RMSNorm(x)
  x' = h + FFN(RMSNorm(h))
  RMSNorm(x) = x * rsqrt(mean(x^2) + rms_norm_eps) * w.
  Attention: head_dim = config head_dim or hidden_size // num_attention_heads; grouped-query
  (query head j uses key/value head j // (H / H_kv)); causal softmax with scale 1/sqrt(head_dim);
  no biases. RoPE rotates halves (rotate_half), inv_freq_i = 1 / rope_theta^(2i / head_dim),
  angle = position * inv_freq; the cos/sin tables are computed in float32 exactly as transformers
  does (its rotary embedding always runs in float32) and then cast to the working dtype.
  FFN of a MoE layer (block_sparse_moe): logits = x gate^T, p = softmax(logits), the top-k
  (k = num_experts_per_tok) of p; their weights renormalised to sum 1 if
  config.get("norm_topk_prob", True) (Mixtral's behaviour) else the raw probabilities;
  y = sum over the k chosen experts of weight * w2(silu(w1 x) * w3 x).
  FFN of a dense layer (Mistral; used when num_local_experts is absent or 1 and the layer has
  mlp.gate_proj/up_proj/down_proj): down(silu(gate x) * up x).
  Then model.norm and lm_head (or embed_tokens when tie_word_embeddings and no lm_head.weight).
  The layouts with routed experts under mlp. (Qwen2-MoE, Qwen3-MoE, OLMoE; mlp.gate.weight):
  experts mlp.experts.{e}.gate_proj / up_proj / down_proj, norm_topk_prob false unless the
  config says true; Qwen2-MoE adds q/k/v biases and a shared expert scaled by
  sigmoid(x mlp.shared_expert_gate^T). When self_attn.q_norm.weight exists, q and k pass through
  RMSNorm (rms_norm_eps) before RoPE: over each head with [head_dim] weights (Qwen3-MoE), or over
  the whole projection with [H * head_dim] and [H_kv * head_dim] weights (OLMoE).

DeepSeek-V2 / DeepSeek-V3 (model_type deepseek_v2 / deepseek_v3), written from DeepSeek's modelling
code (modeling_deepseek.py shipped with deepseek-ai/DeepSeek-V2 and DeepSeek-V3) and checked against
transformers' deepseek_v2 / deepseek_v3. H = num_attention_heads, n = qk_nope_head_dim,
r = qk_rope_head_dim, v = v_head_dim, c = kv_lora_rank. Per layer (model.layers.i.) the same
residual structure as above (input_layernorm, self_attn, post_attention_layernorm, mlp), with:
  Multi-head latent attention (self_attn.; no biases unless attention_bias, which adds biases to
  q_a_proj, kv_a_proj_with_mqa and o_proj only):
    q = q_proj(x) [H*(n+r), d] when q_lora_rank is null, else
        q_b_proj(RMSNorm(q_a_proj(x), q_a_layernorm)) with q_a_proj [q_lora_rank, d],
        q_a_layernorm [q_lora_rank], q_b_proj [H*(n+r), q_lora_rank];
      per head q = [q_nope (n) | q_pe (r)].
    kv_a_proj_with_mqa [c + r, d]: x -> [latent (c) | k_pe (r)]; k_pe is one key shared by all heads.
    kv_b_proj [H*(n+v), c] applied to RMSNorm(latent, kv_a_layernorm [c]); per head [k_nope (n) | value (v)].
    The two latent norms use eps 1e-6 (the modelling code builds them without eps, so the RMSNorm
    default, not rms_norm_eps; the two are equal in the published and the tiny configs).
    RoPE on q_pe and k_pe only, DeepSeek's convention: a vector [x0, x1, ..., x_{r-1}] is first
    de-interleaved to [x0, x2, ..., x_{r-2}, x1, x3, ..., x_{r-1}] and then rotated with rotate_half
    and cos/sin = cat(freqs, freqs) (equivalently: the pairs (x_{2i}, x_{2i+1}) rotated by
    position * inv_freq_i, the result in de-interleaved order -- the same for q and k, so the
    scores equal the interleaved complex rotation's).
    query = cat(q_nope, rope(q_pe)), key = cat(k_nope, rope(k_pe)); causal softmax of
    query . key * softmax_scale; output o_proj [d, H*v] of the per-head attention-weighted values.
    rope_scaling null: inv_freq_i = 1 / rope_theta^(2i / r), cos/sin as rope_cos_sin above.
    rope_scaling {"type" (or "rope_type"): "yarn", factor f, original_max_position_embeddings L
    (default 4096), beta_fast (32), beta_slow (1), mscale (1), mscale_all_dim (0)}:
      freq_extra_i = 1 / theta^(2i/r), freq_inter_i = freq_extra_i / f (i < r/2);
      corr(b) = r * ln(L / (2 pi b)) / (2 ln theta); low = max(floor(corr(beta_fast)), 0),
      high = min(ceil(corr(beta_slow)), r - 1) (high += 0.001 if equal);
      ramp_i = clamp((i - low) / (high - low), 0, 1);
      inv_freq_i = freq_inter_i * ramp_i + freq_extra_i * (1 - ramp_i);
      cos/sin = cos/sin(position * inv_freq) * get_mscale(f, mscale) / get_mscale(f, mscale_all_dim),
      get_mscale(f, m) = 1 if f <= 1 else 0.1 m ln f + 1; all of it in float32 as the modelling
      code does, then cast to the working dtype. Other rope_scaling types are refused.
    softmax_scale = (n + r)^-0.5, times get_mscale(f, mscale_all_dim)^2 when rope_scaling is set
    and mscale_all_dim is non-zero.
  FFN: layer i is MoE iff n_routed_experts is not null and i >= first_k_dense_replace (default 0)
  and i % moe_layer_freq (default 1) == 0; otherwise the dense SwiGLU mlp.gate_proj / up_proj /
  down_proj of width intermediate_size.
  DeepSeekMoE (mlp.): logits = x gate^T (mlp.gate.weight [E, d], E = n_routed_experts);
    scores = softmax(logits) (scoring_func "softmax") or sigmoid(logits) ("sigmoid"); k =
    num_experts_per_tok; the E experts form n_group groups of E / n_group consecutive experts.
    topk_method "greedy" (also DeepSeek-V2's spelling "gready"): the top-k of scores, weights = scores.
    "group_limited_greedy": group score = the group's largest score; the topk_group best groups are
      kept, the other experts' scores set to 0.0; the top-k of those, weights = those (masked) scores.
    "noaux_tc": choice = scores + mlp.gate.e_score_correction_bias [E]; group score = sum of the
      group's two largest choice values; the topk_group best groups kept, the other experts' choice
      values set to 0.0 (not -inf: a negative choice value can lose to a masked expert); the
      top-k of the masked choice values select the experts, weights = their unbiased scores.
    Normalisation, with s = routed_scaling_factor:
      deepseek_v2: if k > 1 and norm_topk_prob: w /= (sum w + 1e-20), else w *= s (never both);
      deepseek_v3: if k > 1 and norm_topk_prob: w /= (sum w + 1e-20); then always w *= s.
    y = sum over the k chosen experts of w * down(silu(gate x) * up x) with
    mlp.experts.{e}.gate_proj / up_proj [moe_intermediate_size, d], down_proj [d, moe_intermediate_size],
    plus (when n_shared_experts is set) the unscaled, ungated shared SwiGLU mlp.shared_experts.gate_proj /
    up_proj / down_proj of width moe_intermediate_size * n_shared_experts.
  Everything in the working dtype but the cos/sin tables (the modelling code runs the router in
  float32 and its norms upcast to float32; in float64 this reference keeps float64 throughout, as
  for the other families). The multi-token-prediction layers of DeepSeek-V3
  (num_nextn_predict_layers, stored as model.layers.{num_hidden_layers}...) are not part of the
  Hugging Face forward and are ignored. The router list returned by forward() holds each MoE
  layer's logits and top-k indices, so the router losses below are moe's softmax-based ones
  whatever scoring_func says (they are not DeepSeek's sequence-wise auxiliary loss); `eval`
  reports the plain mean NLL.

Auxiliary router losses, as this project (moe) defines them -- per MoE layer l with T tokens
(all tokens of the batch), E experts and top-k:
  f_i   = (number of the T*k top-k choices that went to expert i) / (T*k)
  P_i   = mean over the T tokens of the softmax probability p_i
  aux_l = E * sum_i f_i * P_i          (= 1 at perfect balance; the gradient flows through P only)
  z_l   = mean over the T tokens of logsumexp(router logits)^2          (ST-MoE z-loss)
  objective = mean token NLL + router_aux_loss_coef * mean_l(aux_l)
                             + router_z_loss_coef * mean_l(z_l)
  with config.get("router_aux_loss_coef", 0.0) and config.get("router_z_loss_coef", 0.0).
  (transformers' load_balancing_loss_func differs: it pools f and P over all layers and does not
  divide by k, so it equals k at perfect balance; the objective here is moe's.)
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch

# ------------------------------------------------------------------------------------------------
# safetensors in plain Python: 8-byte little-endian header length N, N bytes of JSON
# {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then data.

_READ_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "F64": ("<f8", 8)}
_WRITE_DTYPES = {"f32": "F32", "F32": "F32", "float32": "F32", "f16": "F16", "F16": "F16",
                 "float16": "F16", "bf16": "BF16", "BF16": "BF16", "bfloat16": "BF16"}


class SafetensorsError(Exception):
    pass


def read_safetensors_header(path):
    """Returns (header dict without __metadata__, metadata dict, data section start offset)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{path}: shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise SafetensorsError(f"{path}: header length {n} exceeds the file size {size}")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{path}: header is not valid JSON: {e}")
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_size = size - 8 - n
    for name, info in header.items():
        dt = info.get("dtype")
        if dt not in _READ_DTYPES:
            raise SafetensorsError(f"{path}: tensor {name}: unsupported dtype {dt}")
        b, e = info["data_offsets"]
        numel = int(np.prod(info["shape"], dtype=np.int64))
        if not (0 <= b <= e <= data_size) or e - b != numel * _READ_DTYPES[dt][1]:
            raise SafetensorsError(f"{path}: tensor {name}: bad data_offsets {info['data_offsets']} "
                                   f"for shape {info['shape']} {dt} (data section {data_size} bytes)")
    return header, metadata, 8 + n


def read_safetensors(path, names=None):
    """Reads tensors (all, or those in `names`) as float32 torch tensors (F16/BF16 convert exactly;
    BF16 by shifting the uint16 into the top half of a uint32). Returns (tensors, metadata)."""
    header, metadata, start = read_safetensors_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if names is not None and name not in names:
            continue
        np_dt, _ = _READ_DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        arr = np.frombuffer(mm[start + b:start + e].tobytes(), dtype=np_dt)
        if info["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(arr.astype(np.float32).reshape(info["shape"]))
    del mm
    return out, metadata


def _to_bf16_bits(a32):
    """float32 array -> uint16 bf16 bit patterns, round to nearest even (NaN stays NaN)."""
    u = a32.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(a32)
    r[nan] = 0x7FC0
    return r


def write_safetensors(path, tensors, dtype="f32", metadata=None, keep_f32=()):
    """Writes {name: tensor} in insertion order as F32 (default), F16 or BF16; the tensors named in
    keep_f32 always as F32. The header is padded with spaces to a multiple of 8 bytes. Returns the
    size of the data section in bytes."""
    chosen = _WRITE_DTYPES[dtype]
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        dt = "F32" if name in keep_f32 else chosen
        a = t.detach().to(torch.float64).contiguous().numpy().astype(np.float32)
        if dt == "F32":
            b = a.astype("<f4").tobytes()
        elif dt == "F16":
            b = a.astype("<f2").tobytes()
        else:
            b = _to_bf16_bits(a).astype("<u2").tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    return off


def load_checkpoint(d):
    """(config dict, {name: float32 tensor}) of a Hugging Face checkpoint directory: config.json and
    model.safetensors, or the shards listed in model.safetensors.index.json."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    index = os.path.join(d, "model.safetensors.index.json")
    weights = {}
    if os.path.exists(index):
        with open(index) as f:
            wm = json.load(f)["weight_map"]
        for shard in sorted(set(wm.values())):
            want = {n for n, s in wm.items() if s == shard}
            w, _ = read_safetensors(os.path.join(d, shard), want)
            missing = want - set(w)
            if missing:
                raise SafetensorsError(f"{shard}: index lists tensors it does not hold: {sorted(missing)[:3]}")
            weights.update(w)
    else:
        weights, _ = read_safetensors(os.path.join(d, "model.safetensors"))
    return cfg, weights


# ------------------------------------------------------------------------------------------------
# the model


def head_dim(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_cos_sin(T, D, theta, dtype):
    """cos, sin [T, D] for positions 0..T-1, computed in float32 like transformers, then cast."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def attention(x, W, p, cfg):
    """x [B, T, d] (already normalised) -> [B, T, d]; p is the 'model.layers.i.self_attn.' prefix."""
    B, T, _ = x.shape
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    D = head_dim(cfg)
    def proj(name):  # Qwen2 has q/k/v biases
        y = x @ W[p + name + ".weight"].T
        return y + W[p + name + ".bias"] if p + name + ".bias" in W else y

    q, k, v = proj("q_proj"), proj("k_proj"), proj("v_proj")
    eps = float(cfg.get("rms_norm_eps", 1e-6))
    if p + "q_norm.weight" in W and W[p + "q_norm.weight"].numel() == H * D and H > 1:
        # OLMoE: RMSNorm over the whole q and k projections, before splitting into heads
        q = rms_norm(q, W[p + "q_norm.weight"], eps)
        k = rms_norm(k, W[p + "k_norm.weight"], eps)
    q = q.view(B, T, H, D)
    k = k.view(B, T, Hkv, D)
    if p + "q_norm.weight" in W and W[p + "q_norm.weight"].numel() == D:
        # Qwen3-MoE: RMSNorm of each head's q and k (weights [head_dim])
        q = rms_norm(q, W[p + "q_norm.weight"], eps)
        k = rms_norm(k, W[p + "k_norm.weight"], eps)
    q = q.transpose(1, 2)
    k = k.transpose(1, 2)
    v = v.view(B, T, Hkv, D).transpose(1, 2)
    cos, sin = rope_cos_sin(T, D, float(cfg.get("rope_theta", 10000.0)), x.dtype)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = k.repeat_interleave(H // Hkv, dim=1)  # = transformers' repeat_kv
    v = v.repeat_interleave(H // Hkv, dim=1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    s = s.masked_fill(causal, float("-inf"))
    a = torch.softmax(s, dim=-1) @ v
    return a.transpose(1, 2).reshape(B, T, H * D) @ W[p + "o_proj.weight"].T


def swiglu(x, w_gate, w_up, w_down):
    return (torch.nn.functional.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


def moe_block(h, gate_w, w1, w3, w2, k, norm_topk_prob):
    """The Mixtral sparse MoE block on tokens h [N, d]. gate_w [E, d]; w1[e], w3[e] [F, d]; w2[e]
    [d, F] (lists or stacked tensors). Returns (y [N, d], router logits [N, E], top-k indices [N, k])."""
    E = gate_w.shape[0]
    logits = h @ gate_w.T
    probs = torch.softmax(logits, dim=-1)
    topv, topi = torch.topk(probs, k, dim=-1)
    if norm_topk_prob:
        topv = topv / topv.sum(-1, keepdim=True)
    y = torch.zeros_like(h)
    for e in range(E):
        rows, slot = torch.where(topi == e)
        if rows.numel() == 0:
            continue
        out = swiglu(h[rows], w1[e], w3[e], w2[e])
        y = y.index_add(0, rows, out * topv[rows, slot].unsqueeze(-1))
    return y, logits, topi


def router_losses(logits, topi, E):
    """moe's per-layer router losses (see the module docstring): returns (aux, z) scalars."""
    N, k = topi.shape
    counts = torch.bincount(topi.reshape(-1), minlength=E).to(logits.dtype)
    f = counts / (N * k)
    P = torch.softmax(logits, dim=-1).mean(0)
    aux = E * (f * P).sum()
    z = torch.logsumexp(logits, dim=-1).pow(2).mean()
    return aux, z


def layer_is_moe(cfg, W, i):
    p = f"model.layers.{i}."
    if p + "mlp.gate.weight" in W:  # Qwen2-MoE sparse layer
        return True
    dense = p + "mlp.gate_proj.weight" in W
    if dense and (cfg.get("num_local_experts") or 1) == 1:
        return False
    if p + "block_sparse_moe.gate.weight" in W:
        return True
    if dense:
        return False
    raise KeyError(f"layer {i}: neither block_sparse_moe.gate.weight nor mlp.gate_proj.weight")


def final_logits(cfg, W, x, eps):
    """model.norm then lm_head (or embed_tokens when tie_word_embeddings and no lm_head.weight)."""
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight")
    if head is None:
        if not cfg.get("tie_word_embeddings", False):
            raise KeyError("lm_head.weight is missing and tie_word_embeddings is not true")
        head = W["model.embed_tokens.weight"]
    return x @ head.T


def forward(cfg, W, tokens):
    """tokens LongTensor [B, T] -> (logits [B, T, V], router list of (logits [B*T, E], topi [B*T, k]))
    for each MoE layer. W: {name: tensor} in the working dtype (may require grad)."""
    if is_deepseek(cfg):
        return deepseek_forward(cfg, W, tokens)
    eps = float(cfg.get("rms_norm_eps", 1e-6))
    B, T = tokens.shape
    x = W["model.embed_tokens.weight"][tokens]
    d = x.shape[-1]
    router = []
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = x + attention(rms_norm(x, W[p + "input_layernorm.weight"], eps), W, p + "self_attn.", cfg)
        hn = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        if layer_is_moe(cfg, W, i):
            qwen = p + "mlp.gate.weight" in W
            q = p + ("mlp." if qwen else "block_sparse_moe.")
            names = ("gate_proj", "up_proj", "down_proj") if qwen else ("w1", "w3", "w2")
            E = W[q + "gate.weight"].shape[0]
            w1 = [W[f"{q}experts.{e}.{names[0]}.weight"] for e in range(E)]
            w3 = [W[f"{q}experts.{e}.{names[1]}.weight"] for e in range(E)]
            w2 = [W[f"{q}experts.{e}.{names[2]}.weight"] for e in range(E)]
            h2 = hn.reshape(-1, d)
            y, logits, topi = moe_block(h2, W[q + "gate.weight"], w1, w3, w2, cfg["num_experts_per_tok"],
                                        cfg.get("norm_topk_prob", not qwen))
            # Shared experts: Qwen2-MoE's one sigmoid-gated shared expert, or moe's ungated ones.
            sp = q + ("shared_expert." if qwen else "shared_experts.")
            if sp + "gate_proj.weight" in W:
                ys = swiglu(h2, W[sp + "gate_proj.weight"], W[sp + "up_proj.weight"], W[sp + "down_proj.weight"])
                if q + "shared_expert_gate.weight" in W:
                    ys = torch.sigmoid(h2 @ W[q + "shared_expert_gate.weight"].T) * ys
                y = y + ys
            router.append((logits, topi))
            x = x + y.view(B, T, d)
        else:
            x = x + swiglu(hn, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"],
                           W[p + "mlp.down_proj.weight"])
    return final_logits(cfg, W, x, eps), router


def losses(cfg, logits, tokens, router):
    """(mean NLL over the B*(T-1) predicted positions, mean aux, mean z, objective)."""
    V = logits.shape[-1]
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))
    if not router:
        zero = torch.zeros((), dtype=logits.dtype)
        return nll, zero, zero, nll
    per = [router_losses(lg, ti, lg.shape[1]) for lg, ti in router]
    aux = torch.stack([a for a, _ in per]).mean()
    z = torch.stack([z for _, z in per]).mean()
    obj = nll + cfg.get("router_aux_loss_coef", 0.0) * aux + cfg.get("router_z_loss_coef", 0.0) * z
    return nll, aux, z, obj


# ------------------------------------------------------------------------------------------------
# DeepSeek-V2 / DeepSeek-V3 (model_type deepseek_v2 / deepseek_v3): multi-head latent attention
# (MLA) with YaRN RoPE on a shared rotary key, DeepSeekMoE with grouped routing and shared experts.
# See the module docstring for the specification.

DEEPSEEK_TYPES = ("deepseek_v2", "deepseek_v3")
# The latent norms q_a_layernorm / kv_a_layernorm are built without an eps in the modelling code,
# so they use the RMSNorm default, not rms_norm_eps.
DEEPSEEK_LATENT_NORM_EPS = 1e-6


def is_deepseek(cfg):
    return cfg.get("model_type") in DEEPSEEK_TYPES


def yarn_get_mscale(scale, mscale):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def yarn_correction_range(beta_fast, beta_slow, dim, base, original_max):
    """The [low, high] dimension-pair range of the YaRN ramp, clamped to [0, dim - 1]."""
    def corr(rotations):  # the dimension whose wavelength makes `rotations` turns over original_max
        return dim * math.log(original_max / (rotations * 2 * math.pi)) / (2 * math.log(base))
    return max(math.floor(corr(beta_fast)), 0), min(math.ceil(corr(beta_slow)), dim - 1)


def deepseek_rope_scaling(cfg):
    """The YaRN parameters, or None for plain RoPE."""
    rs = cfg.get("rope_scaling")
    if not rs:
        return None
    kind = rs.get("type", rs.get("rope_type"))
    if kind != "yarn":
        raise NotImplementedError(f"{cfg['model_type']}: rope_scaling type {kind!r} (only yarn or null)")
    return {"factor": float(rs["factor"]),
            "original_max_position_embeddings": rs.get("original_max_position_embeddings", 4096),
            "beta_fast": rs.get("beta_fast", 32), "beta_slow": rs.get("beta_slow", 1),
            "mscale": rs.get("mscale", 1), "mscale_all_dim": rs.get("mscale_all_dim", 0)}


def yarn_inv_freq(D, theta, factor, beta_fast, beta_slow, original_max):
    """float32 [D/2]: 1/theta^(2i/D) (extrapolation) and the same / factor (interpolation) blended by
    a linear ramp over the pairs between the correction range's bounds."""
    exponent = torch.arange(0, D, 2, dtype=torch.float32) / D
    freq_extra = 1.0 / (theta ** exponent)
    freq_inter = 1.0 / (factor * theta ** exponent)
    low, high = yarn_correction_range(beta_fast, beta_slow, D, theta, original_max)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(D // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extra_weight = 1.0 - ramp
    return freq_inter * (1 - extra_weight) + freq_extra * extra_weight


def deepseek_rope_cos_sin(cfg, T, dtype):
    """cos, sin [T, qk_rope_head_dim] in float32 as the modelling code builds its cache (YaRN: times
    yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)), then cast to dtype."""
    D = cfg["qk_rope_head_dim"]
    theta = float(cfg.get("rope_theta", 10000.0))
    y = deepseek_rope_scaling(cfg)
    if y is None:
        return rope_cos_sin(T, D, theta, dtype)
    inv_freq = yarn_inv_freq(D, theta, y["factor"], y["beta_fast"], y["beta_slow"],
                             y["original_max_position_embeddings"])
    freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    m = float(yarn_get_mscale(y["factor"], y["mscale"]) / yarn_get_mscale(y["factor"], y["mscale_all_dim"]))
    return (emb.cos() * m).to(dtype), (emb.sin() * m).to(dtype)


def deepseek_softmax_scale(cfg):
    """(qk_nope_head_dim + qk_rope_head_dim)^-0.5, times yarn_get_mscale(factor, mscale_all_dim)^2
    when rope_scaling sets a non-zero mscale_all_dim."""
    scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    y = deepseek_rope_scaling(cfg)
    if y is not None and y["mscale_all_dim"]:
        m = yarn_get_mscale(y["factor"], y["mscale_all_dim"])
        scale = scale * m * m
    return scale


def rope_deinterleaved(x, cos, sin):
    """DeepSeek's RoPE on x [..., T, D]: the pairs (x[2i], x[2i+1]) are first de-interleaved to
    [x0, x2, ..., x1, x3, ...], then rotated with rotate_half; the result stays in that order."""
    D = x.shape[-1]
    x = x.unflatten(-1, (D // 2, 2)).transpose(-1, -2).flatten(-2)
    return x * cos + rotate_half(x) * sin


def _linear(x, W, name):
    y = x @ W[name + ".weight"].T
    return y + W[name + ".bias"] if name + ".bias" in W else y


def mla_attention(x, W, p, cfg):
    """Multi-head latent attention, x [B, T, d] (already normalised) -> [B, T, d]; p is the
    'model.layers.i.self_attn.' prefix."""
    B, T, _ = x.shape
    H = cfg["num_attention_heads"]
    nope, rope, vd, R = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    if p + "q_proj.weight" in W:  # q_lora_rank null
        q = x @ W[p + "q_proj.weight"].T
    else:
        q = rms_norm(_linear(x, W, p + "q_a_proj"), W[p + "q_a_layernorm.weight"], DEEPSEEK_LATENT_NORM_EPS)
        q = q @ W[p + "q_b_proj.weight"].T
    q_nope, q_pe = q.view(B, T, H, nope + rope).transpose(1, 2).split([nope, rope], dim=-1)
    latent, k_pe = _linear(x, W, p + "kv_a_proj_with_mqa").split([R, rope], dim=-1)
    kv = rms_norm(latent, W[p + "kv_a_layernorm.weight"], DEEPSEEK_LATENT_NORM_EPS) @ W[p + "kv_b_proj.weight"].T
    k_nope, v = kv.view(B, T, H, nope + vd).transpose(1, 2).split([nope, vd], dim=-1)
    cos, sin = deepseek_rope_cos_sin(cfg, T, x.dtype)
    q_pe = rope_deinterleaved(q_pe, cos, sin)
    k_pe = rope_deinterleaved(k_pe.unsqueeze(1), cos, sin)  # [B, 1, T, rope]: one key shared by all heads
    q = torch.cat((q_nope, q_pe), dim=-1)
    k = torch.cat((k_nope, k_pe.expand(B, H, T, rope)), dim=-1)
    s = (q @ k.transpose(-1, -2)) * deepseek_softmax_scale(cfg)
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    s = s.masked_fill(causal, float("-inf"))
    a = torch.softmax(s, dim=-1) @ v
    return _linear(a.transpose(1, 2).reshape(B, T, H * vd), W, p + "o_proj")


def deepseek_layer_is_moe(cfg, i):
    return (cfg.get("n_routed_experts") is not None and i >= cfg.get("first_k_dense_replace", 0)
            and i % cfg.get("moe_layer_freq", 1) == 0)


def deepseek_route(logits, cfg, bias=None):
    """The DeepSeek router on logits [N, E] -> (expert indices [N, k], weights [N, k])."""
    N, E = logits.shape
    k = cfg["num_experts_per_tok"]
    scoring, method = cfg["scoring_func"], cfg["topk_method"]
    if scoring == "softmax":
        scores = torch.softmax(logits, dim=-1)
    elif scoring == "sigmoid":
        scores = torch.sigmoid(logits)
    else:
        raise NotImplementedError(f"scoring_func {scoring!r}")

    G = cfg.get("n_group") or 1

    def keep_best_groups(choice, group_scores):  # experts outside the topk_group best groups -> 0.0
        best = torch.topk(group_scores, cfg["topk_group"], dim=-1).indices
        mask = torch.zeros_like(group_scores, dtype=torch.bool).scatter(1, best, True)
        return choice.masked_fill(~mask.repeat_interleave(E // G, dim=1), 0.0)

    if method in ("greedy", "gready"):  # "gready": DeepSeek-V2's modelling code spells it so
        topv, topi = torch.topk(scores, k, dim=-1)
    elif method == "group_limited_greedy":
        masked = keep_best_groups(scores, scores.view(N, G, E // G).max(dim=-1).values)
        topv, topi = torch.topk(masked, k, dim=-1)
    elif method == "noaux_tc":
        choice = scores + bias
        group_scores = choice.view(N, G, E // G).topk(2, dim=-1).values.sum(dim=-1)
        topi = torch.topk(keep_best_groups(choice, group_scores), k, dim=-1).indices
        topv = scores.gather(1, topi)
    else:
        raise NotImplementedError(f"topk_method {method!r}")
    normalise = k > 1 and cfg["norm_topk_prob"]
    if normalise:
        topv = topv / (topv.sum(dim=-1, keepdim=True) + 1e-20)
    if cfg["model_type"] == "deepseek_v3" or not normalise:  # V2 scales only when not normalising
        topv = topv * cfg["routed_scaling_factor"]
    return topi, topv


def deepseek_moe(h, W, q, cfg):
    """DeepSeekMoE on tokens h [N, d]; q is the 'model.layers.i.mlp.' prefix. Returns (y [N, d],
    router logits [N, E], top-k indices [N, k])."""
    gate_w = W[q + "gate.weight"]
    E = gate_w.shape[0]
    logits = h @ gate_w.T
    topi, topv = deepseek_route(logits, cfg, W.get(q + "gate.e_score_correction_bias"))
    y = torch.zeros_like(h)
    for e in range(E):
        rows, slot = torch.where(topi == e)
        if rows.numel() == 0:
            continue
        p = f"{q}experts.{e}."
        out = swiglu(h[rows], W[p + "gate_proj.weight"], W[p + "up_proj.weight"], W[p + "down_proj.weight"])
        y = y.index_add(0, rows, out * topv[rows, slot].unsqueeze(-1))
    s = q + "shared_experts."
    if s + "gate_proj.weight" in W:
        y = y + swiglu(h, W[s + "gate_proj.weight"], W[s + "up_proj.weight"], W[s + "down_proj.weight"])
    return y, logits, topi


def deepseek_forward(cfg, W, tokens):
    """forward() for model_type deepseek_v2 / deepseek_v3."""
    eps = float(cfg.get("rms_norm_eps", 1e-6))
    B, T = tokens.shape
    x = W["model.embed_tokens.weight"][tokens]
    d = x.shape[-1]
    router = []
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = x + mla_attention(rms_norm(x, W[p + "input_layernorm.weight"], eps), W, p + "self_attn.", cfg)
        hn = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        if deepseek_layer_is_moe(cfg, i):
            y, logits, topi = deepseek_moe(hn.reshape(-1, d), W, p + "mlp.", cfg)
            router.append((logits, topi))
            x = x + y.view(B, T, d)
        else:
            x = x + swiglu(hn, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"],
                           W[p + "mlp.down_proj.weight"])
    return final_logits(cfg, W, x, eps), router


def deepseek_shapes(cfg):
    """[(name, shape)] of a DeepSeek-V2 / V3 checkpoint (the multi-token-prediction layers of
    num_nextn_predict_layers are not part of the Hugging Face model and are not written)."""
    d, V = cfg["hidden_size"], cfg["vocab_size"]
    H = cfg["num_attention_heads"]
    nope, rope, vd = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    R, Rq = cfg["kv_lora_rank"], cfg.get("q_lora_rank")
    bias = bool(cfg.get("attention_bias", False))
    E = cfg.get("n_routed_experts") or 0
    Fd, Fe = cfg["intermediate_size"], cfg.get("moe_intermediate_size")
    Fs = (Fe or 0) * (cfg.get("n_shared_experts") or 0)
    out = [("model.embed_tokens.weight", (V, d))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        out.append((p + "input_layernorm.weight", (d,)))
        if Rq is None:
            out.append((a + "q_proj.weight", (H * (nope + rope), d)))
        else:
            out.append((a + "q_a_proj.weight", (Rq, d)))
            if bias:
                out.append((a + "q_a_proj.bias", (Rq,)))
            out += [(a + "q_a_layernorm.weight", (Rq,)), (a + "q_b_proj.weight", (H * (nope + rope), Rq))]
        out.append((a + "kv_a_proj_with_mqa.weight", (R + rope, d)))
        if bias:
            out.append((a + "kv_a_proj_with_mqa.bias", (R + rope,)))
        out += [(a + "kv_a_layernorm.weight", (R,)), (a + "kv_b_proj.weight", (H * (nope + vd), R)),
                (a + "o_proj.weight", (d, H * vd))]
        if bias:
            out.append((a + "o_proj.bias", (d,)))
        out.append((p + "post_attention_layernorm.weight", (d,)))
        if deepseek_layer_is_moe(cfg, i):
            out.append((p + "mlp.gate.weight", (E, d)))
            if cfg.get("topk_method") == "noaux_tc":
                out.append((p + "mlp.gate.e_score_correction_bias", (E,)))
            for e in range(E):
                q = f"{p}mlp.experts.{e}."
                out += [(q + "gate_proj.weight", (Fe, d)), (q + "up_proj.weight", (Fe, d)), (q + "down_proj.weight", (d, Fe))]
            if Fs:
                q = p + "mlp.shared_experts."
                out += [(q + "gate_proj.weight", (Fs, d)), (q + "up_proj.weight", (Fs, d)), (q + "down_proj.weight", (d, Fs))]
        else:
            out += [(p + "mlp.gate_proj.weight", (Fd, d)), (p + "mlp.up_proj.weight", (Fd, d)),
                    (p + "mlp.down_proj.weight", (d, Fd))]
    out.append(("model.norm.weight", (d,)))
    if not cfg.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", (V, d)))
    return out


# ------------------------------------------------------------------------------------------------
# commands


def _parse_dtype(s):
    return {"float64": torch.float64, "float32": torch.float32}[s]


def eval_text(cfg, W, data, T, batch_size=0, dtype=torch.float64):
    """The evaluation contract over data (bytes, or a list of token ids); returns (number of predicted
    positions, summed NLL in nats)."""
    if T < 2:
        raise ValueError(f"context must be at least 2 tokens, got {T}")
    windows = [(s, min(T, len(data) - s)) for s in range(0, len(data), T)]
    if batch_size <= 0:  # keep activations (scores, logits, FFN) under ~512 MB
        H = cfg["num_attention_heads"]
        F = cfg["intermediate_size"] * max(1, cfg.get("num_experts_per_tok") or 1)
        per_window = torch.finfo(dtype).bits // 8 * T * (3 * H * T + 3 * cfg["vocab_size"] +
                                                          4 * F + 16 * cfg["hidden_size"])
        batch_size = max(1, min(64, (512 << 20) // max(1, per_window)))
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else np.asarray(data, dtype=np.int64)
    total, count, i = 0.0, 0, 0
    with torch.no_grad():
        while i < len(windows):
            L = windows[i][1]
            j = i
            while j < len(windows) and j - i < batch_size and windows[j][1] == L:
                j += 1
            if L >= 2:
                tok = torch.from_numpy(np.stack([buf[s:s + L] for s, _ in windows[i:j]]).astype(np.int64))
                logits, _ = forward(cfg, W, tok)
                V = logits.shape[-1]
                nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), tok[:, 1:].reshape(-1),
                                                        reduction="sum")
                total += float(nll)
                count += tok.shape[0] * (L - 1)
            i = j
    return count, total


def cmd_eval(args):
    if bool(args.ids) == bool(args.data):
        raise SystemExit("give exactly one of --data FILE and --ids IDS.json")
    cfg, W = load_checkpoint(args.model)
    dt = _parse_dtype(args.dtype)
    W = {n: w.to(dt) for n, w in W.items()}
    if args.ids:  # a tokenizer's ids of the text
        with open(args.ids) as f:
            data = json.load(f)
        if not all(isinstance(i, int) and 0 <= i < cfg["vocab_size"] for i in data):
            raise SystemExit(f"{args.ids}: ids must be integers below vocab_size {cfg['vocab_size']}")
    else:
        if cfg.get("vocab_size", 256) < 256:
            raise SystemExit(f"vocab_size {cfg['vocab_size']} < 256: the tokens are bytes")
        with open(args.data, "rb") as f:
            data = f.read()
    if len(data) < 2:
        raise SystemExit(f"{args.ids or args.data}: needs at least 2 tokens to predict anything, has {len(data)}")
    T = args.context or cfg["max_position_embeddings"]
    count, total = eval_text(cfg, W, data, T, args.batch_size, dt)
    loss = total / count
    print(f"{args.ids or args.data}: {count} predicted tokens, context {T}, {args.dtype}", file=sys.stderr)
    print(json.dumps({"tokens": count, "loss": loss, "perplexity": math.exp(loss)}))


def cmd_compare_logits(args):
    """The float64 logits of the first window of --data (its first T bytes, T = --context or
    max_position_embeddings) against --logits, a safetensors file with the tensor "logits" [T, V]
    (moe eval --logits). Prints one JSON line: max_abs (largest absolute difference), scale (largest
    absolute reference logit), relative = max_abs / scale, and argmax_agree (positions whose top
    logit is the reference's top one, or within 1e-6 * scale of it); per position, position_relative
    (its largest difference / scale) and argmax_gap ((the reference's top logit - its logit at our
    argmax) / scale): tolerances for bf16 arithmetic are judged on these."""
    cfg, W = load_checkpoint(args.model)
    W = {n: w.to(torch.float64) for n, w in W.items()}
    with open(args.data, "rb") as f:
        data = f.read()
    T = min(args.context or cfg["max_position_embeddings"], len(data))
    ours = read_safetensors(args.logits, ["logits"])[0]["logits"].to(torch.float64)
    with torch.no_grad():
        ref, _ = forward(cfg, W, torch.tensor([list(data[:T])], dtype=torch.int64))
    ref = ref[0]
    if tuple(ours.shape) != tuple(ref.shape):
        raise SystemExit(f"{args.logits}: logits {tuple(ours.shape)}, the reference has {tuple(ref.shape)}")
    max_abs = float((ours - ref).abs().max())
    scale = float(ref.abs().max())
    # the reference's logit at our argmax within 1e-6 of the scale of its own maximum (near-ties)
    at_ours = ref.gather(-1, ours.argmax(-1, keepdim=True)).squeeze(-1)
    agree = int((at_ours >= ref.max(-1).values - 1e-6 * scale).sum())
    position_relative = ((ours - ref).abs().max(-1).values / scale).tolist()
    argmax_gap = ((ref.max(-1).values - at_ours) / scale).tolist()
    print(json.dumps({"positions": T, "vocab": ref.shape[-1], "max_abs": max_abs, "scale": scale,
                      "relative": max_abs / scale, "argmax_agree": agree,
                      "position_relative": position_relative, "argmax_gap": argmax_gap}))


def cmd_greedy_check(args):
    """Is each byte of --text after its first --prompt-bytes among the --top-k largest float64
    logits of a full forward over the bytes before it (the last max_position_embeddings of them)?
    Checks text a generator produced, greedy (top-k 1) or sampled from the top k; a near-tie
    within --tie of the k-th logit counts as agreeing."""
    cfg, W = load_checkpoint(args.model)
    W = {n: w.to(torch.float64) for n, w in W.items()}
    with open(args.text, "rb") as f:
        data = f.read()
    T = cfg["max_position_embeddings"]
    n, agree, worst = 0, 0, 0.0
    with torch.no_grad():
        for i in range(args.prompt_bytes, len(data)):
            ctx = torch.tensor([list(data[max(0, i - T):i])], dtype=torch.int64)
            logits, _ = forward(cfg, W, ctx)
            last = logits[0, -1]
            # The gap to the k-th best logit: 0 or less when the byte is among the top k.
            gap = float(torch.topk(last, args.top_k).values[-1] - last[data[i]])
            worst = max(worst, gap)
            n += 1
            agree += gap <= args.tie * max(1.0, float(last.abs().max()))
    print(json.dumps({"tokens": n, "agree": agree, "worst_gap": worst}))


def param_shapes(cfg):
    """[(Hugging Face name, shape)] in a fixed order; MoE layers for model_type mixtral or
    num_local_experts > 1, dense mlp.* otherwise."""
    if is_deepseek(cfg):
        return deepseek_shapes(cfg)
    d, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    D = head_dim(cfg)
    E = cfg.get("num_local_experts") or 0
    moe = cfg.get("model_type") == "mixtral" or E > 1
    out = [("model.embed_tokens.weight", (V, d))]
    if cfg.get("model_type") in ("qwen2_moe", "qwen3_moe", "olmoe"):
        return out + mlp_family_shapes(cfg, d, V, H, Hkv, D)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (d,)),
                (p + "self_attn.q_proj.weight", (H * D, d)),
                (p + "self_attn.k_proj.weight", (Hkv * D, d)),
                (p + "self_attn.v_proj.weight", (Hkv * D, d)),
                (p + "self_attn.o_proj.weight", (d, H * D)),
                (p + "post_attention_layernorm.weight", (d,))]
        if moe:
            out.append((p + "block_sparse_moe.gate.weight", (E, d)))
            for e in range(E):
                q = f"{p}block_sparse_moe.experts.{e}."
                out += [(q + "w1.weight", (F, d)), (q + "w2.weight", (d, F)), (q + "w3.weight", (F, d))]
        else:
            out += [(p + "mlp.gate_proj.weight", (F, d)), (p + "mlp.up_proj.weight", (F, d)),
                    (p + "mlp.down_proj.weight", (d, F))]
    out.append(("model.norm.weight", (d,)))
    if not cfg.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", (V, d)))
    return out


def mlp_family_shapes(cfg, d, V, H, Hkv, D):
    """The layouts whose routed experts live under mlp.: sparse layers mlp.gate,
    mlp.experts.{e}.{gate,up,down}_proj; dense layers (mlp_only_layers, decoder_sparse_step)
    mlp.{gate,up,down}_proj of width intermediate_size.
      qwen2_moe: q/k/v biases, mlp.shared_expert.* and mlp.shared_expert_gate, experts of width
                 moe_intermediate_size;
      qwen3_moe: self_attn.q_norm / k_norm of [head_dim], experts of width moe_intermediate_size;
      olmoe:     self_attn.q_norm [H * head_dim] / k_norm [H_kv * head_dim], experts of width
                 intermediate_size, every layer sparse."""
    mt = cfg["model_type"]
    E = cfg["num_experts"]
    Fe = cfg["intermediate_size"] if mt == "olmoe" else cfg["moe_intermediate_size"]
    Fd = cfg["intermediate_size"]
    Fs = (cfg.get("shared_expert_intermediate_size") or 0) if mt == "qwen2_moe" else 0
    step, only = cfg.get("decoder_sparse_step", 1), cfg.get("mlp_only_layers") or []
    bias = mt == "qwen2_moe"
    out = []
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out.append((p + "input_layernorm.weight", (d,)))
        for name, rows in (("q_proj", H * D), ("k_proj", Hkv * D), ("v_proj", Hkv * D)):
            out.append((p + f"self_attn.{name}.weight", (rows, d)))
            if bias:
                out.append((p + f"self_attn.{name}.bias", (rows,)))
        out.append((p + "self_attn.o_proj.weight", (d, H * D)))
        if mt == "qwen3_moe":
            out += [(p + "self_attn.q_norm.weight", (D,)), (p + "self_attn.k_norm.weight", (D,))]
        elif mt == "olmoe":
            out += [(p + "self_attn.q_norm.weight", (H * D,)), (p + "self_attn.k_norm.weight", (Hkv * D,))]
        out.append((p + "post_attention_layernorm.weight", (d,)))
        if i not in only and E > 0 and (i + 1) % step == 0:
            out.append((p + "mlp.gate.weight", (E, d)))
            for e in range(E):
                q = f"{p}mlp.experts.{e}."
                out += [(q + "gate_proj.weight", (Fe, d)), (q + "up_proj.weight", (Fe, d)), (q + "down_proj.weight", (d, Fe))]
            if Fs:
                q = p + "mlp.shared_expert."
                out += [(q + "gate_proj.weight", (Fs, d)), (q + "up_proj.weight", (Fs, d)), (q + "down_proj.weight", (d, Fs)),
                        (p + "mlp.shared_expert_gate.weight", (1, d))]
        else:
            out += [(p + "mlp.gate_proj.weight", (Fd, d)), (p + "mlp.up_proj.weight", (Fd, d)),
                    (p + "mlp.down_proj.weight", (d, Fd))]
    out.append(("model.norm.weight", (d,)))
    if not cfg.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", (V, d)))
    return out


def random_weights(cfg, seed, std=0.1):
    """float64 weights: matrices N(0, std^2), norm weights 1 + 0.1 N(0, 1); deterministic in seed."""
    g = torch.Generator().manual_seed(seed)
    W = {}
    for name, shape in param_shapes(cfg):
        r = torch.randn(*shape, generator=g, dtype=torch.float64)
        W[name] = 1.0 + 0.1 * r if name.endswith("norm.weight") else std * r
    return W


def write_checkpoint(out, W, dtype="f32", shards=1):
    """The tensors in W in the chosen dtype, except DeepSeek-V3's e_score_correction_bias, which stays
    F32 as in the published checkpoints."""
    os.makedirs(out, exist_ok=True)
    names = list(W)
    keep_f32 = {n for n in names if n.endswith(".e_score_correction_bias")}
    shards = max(1, min(shards, len(names)))
    if shards == 1:
        write_safetensors(os.path.join(out, "model.safetensors"), W, dtype, {"format": "pt"}, keep_f32)
        return
    # contiguous groups of (almost) equal tensor counts, in name order of param_shapes
    per, extra = divmod(len(names), shards)
    groups, at = [], 0
    for s in range(shards):
        n = per + (1 if s < extra else 0)
        groups.append(names[at:at + n])
        at += n
    wm, total = {}, 0
    for s, group in enumerate(groups):
        fname = f"model-{s + 1:05d}-of-{len(groups):05d}.safetensors"
        total += write_safetensors(os.path.join(out, fname), {n: W[n] for n in group}, dtype, {"format": "pt"},
                                   keep_f32)
        wm.update({n: fname for n in group})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)
        f.write("\n")


def cmd_make_checkpoint(args):
    with open(args.config) as f:
        cfg = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    for stale in ("model.safetensors", "model.safetensors.index.json"):
        if os.path.exists(os.path.join(args.out, stale)):
            os.remove(os.path.join(args.out, stale))
    shutil.copyfile(args.config, os.path.join(args.out, "config.json"))
    write_checkpoint(args.out, random_weights(cfg, args.seed), args.dtype, args.shards)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval", help="mean next-byte NLL of a checkpoint on a file")
    e.add_argument("--model", required=True, help="checkpoint directory")
    e.add_argument("--data", help="text file (its bytes are the tokens)")
    e.add_argument("--ids", help="instead of --data: a JSON list of token ids (a tokenizer's)")
    e.add_argument("--context", type=int, default=0, help="window length (default max_position_embeddings)")
    e.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    e.add_argument("--batch-size", type=int, default=0, help="windows per forward pass (default: automatic)")
    e.add_argument("--threads", type=int, default=0, help="torch threads (default: min(4, cores))")
    g = sub.add_parser("greedy-check", help="check greedy-generated text against full forwards")
    g.add_argument("--model", required=True, help="checkpoint directory")
    g.add_argument("--text", required=True, help="file: the prompt's bytes, then the generated ones")
    g.add_argument("--prompt-bytes", type=int, required=True)
    g.add_argument("--top-k", type=int, default=1, help="the bytes were chosen among the k best (1: greedy)")
    g.add_argument("--tie", type=float, default=1e-4, help="relative gap to the k-th logit still counted as agreeing")
    c = sub.add_parser("compare-logits", help="a window's logits from another implementation against float64")
    c.add_argument("--model", required=True, help="checkpoint directory")
    c.add_argument("--data", required=True, help="text file (its bytes are the tokens)")
    c.add_argument("--logits", required=True, help="safetensors file with the tensor logits [T, V]")
    c.add_argument("--context", type=int, default=0, help="T (default max_position_embeddings)")
    m = sub.add_parser("make-checkpoint", help="random weights with the Hugging Face names")
    m.add_argument("--out", required=True)
    m.add_argument("--config", required=True)
    m.add_argument("--seed", type=int, required=True)
    m.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    m.add_argument("--shards", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(getattr(args, "threads", 0) or min(4, os.cpu_count() or 1))
    {"eval": cmd_eval, "greedy-check": cmd_greedy_check, "compare-logits": cmd_compare_logits,
     "make-checkpoint": cmd_make_checkpoint}[args.cmd](args)


if __name__ == "__main__":
    main()
