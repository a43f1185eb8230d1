#!/usr/bin/env python3
"""The peer: a Mixtral-style sparse MoE block as Hugging Face writes it (softmax router, top-k,
renormalise, a Python loop over experts with index_add_), SwiGLU experts, timed forward and
forward+backward in PyTorch, next to a dense SwiGLU layer of the same active size. GFLOP/s count the
active expert FLOPs only (2*k*3*d*F per token forward, x3 for forward+backward), as `moe bench
moe-layer` does. Run it with Debian's PyTorch, e.g.

  OMP_NUM_THREADS=2 OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/pytorch_moe_block.py \
      --d-model 512 --d-ff 1024 --experts 8 --top-k 2 --tokens 4096 --json
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


class Expert(torch.nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.w1 = torch.nn.Linear(d, f, bias=False)
        self.w3 = torch.nn.Linear(d, f, bias=False)
        self.w2 = torch.nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class SparseMoeBlock(torch.nn.Module):
    """transformers' MixtralSparseMoeBlock, without jitter noise."""

    def __init__(self, d, f, e, k):
        super().__init__()
        self.k, self.e = k, e
        self.gate = torch.nn.Linear(d, e, bias=False)
        self.experts = torch.nn.ModuleList(Expert(d, f) for _ in range(e))

    def forward(self, x):
        logits = self.gate(x)
        w = F.softmax(logits, dim=1, dtype=torch.float)
        w, sel = torch.topk(w, self.k, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(x)
        mask = F.one_hot(sel, num_classes=self.e).permute(2, 1, 0)
        for i in range(self.e):
            idx, top_x = torch.where(mask[i])
            if top_x.numel() == 0:
                continue
            cur = x[top_x]
            y = self.experts[i](cur) * w[top_x, idx, None]
            out.index_add_(0, top_x, y.to(x.dtype))
        return out, logits


def timed(fn, reps):
    fn()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    t.sort()
    return t[len(t) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--d-ff", type=int, default=1024)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    D, Fd, E, K, T = a.d_model, a.d_ff, a.experts, a.top_k, a.tokens
    block = SparseMoeBlock(D, Fd, E, K)
    dense = Expert(D, K * Fd)
    x = torch.randn(T, D, requires_grad=True)
    dy = torch.randn(T, D)

    def moe_fb():
        y, _ = block(x)
        y.backward(dy)

    def dense_fb():
        dense(x).backward(dy)

    with torch.no_grad():
        fwd = timed(lambda: block(x), a.reps)
        dfwd = timed(lambda: dense(x), a.reps)
    fb = timed(moe_fb, a.reps)
    dfb = timed(dense_fb, a.reps)
    flops = 2.0 * K * 3 * D * Fd * T
    r = {"d_model": D, "d_ff": Fd, "experts": E, "top_k": K, "tokens": T,
         "torch": torch.__version__, "threads": torch.get_num_threads(),
         "fwd_tokens_per_s": T / fwd, "fwdbwd_tokens_per_s": T / fb,
         "fwd_gflops": flops / fwd / 1e9, "fwdbwd_gflops": 3 * flops / fb / 1e9,
         "dense_fwd_gflops": flops / dfwd / 1e9, "dense_fwdbwd_gflops": 3 * flops / dfb / 1e9}
    r["ratio"] = r["fwdbwd_gflops"] / r["dense_fwdbwd_gflops"]
    print(f"PyTorch {torch.__version__} MoE block D={D} F={Fd} E={E} K={K} T={T}, {r['threads']} threads")
    print(f"  forward+backward {r['fwdbwd_tokens_per_s']:9.0f} tokens/s {r['fwdbwd_gflops']:7.1f} GFLOP/s"
          f"   dense {r['dense_fwdbwd_gflops']:7.1f} GFLOP/s   ratio {r['ratio']:.3f}")
    if a.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
