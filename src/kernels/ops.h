#pragma once
// Elementwise and row-wise kernels on raw row-major float buffers, each with its backward next to
// it. Conventions: outputs first; activation gradients are assigned, parameter gradients (dw)
// accumulate (+=). Rows are independent and parallelised with OpenMP.
#include <cstdint>

namespace moe::kernels {

// ---- softmax over the last dimension --------------------------------------------------------
// y[r, c] = exp(x[r,c] - max_r) / sum; y may alias x.
void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols);
// dx = y * (dy - sum(dy * y)); dx may alias dy.
void softmax_backward(float* dx, const float* y, const float* dy, int64_t rows, int64_t cols);
// lse[r] = log(sum_c exp(x[r,c])) (numerically stable)
void logsumexp_rows(float* lse, const float* x, int64_t rows, int64_t cols);

// ---- top-k over the last dimension ----------------------------------------------------------
// For each row, the k largest values in descending order with their column indices. Ties go to the
// lower column index (the same order as a stable sort), so results are deterministic.
void topk_rows(int32_t* idx, float* val, const float* x, int64_t rows, int64_t cols, int k);

// ---- activations ----------------------------------------------------------------------------
// silu(a) = a * sigmoid(a)
void silu_forward(float* y, const float* a, int64_t n);
void silu_backward(float* da, const float* a, const float* dy, int64_t n);
// Fused SwiGLU: h = silu(g) * u, elementwise over n entries.
void swiglu_forward(float* h, const float* g, const float* u, int64_t n);
// dg = dh * u * silu'(g); du = dh * silu(g). dg/du may not alias g/u.
void swiglu_backward(float* dg, float* du, const float* g, const float* u, const float* dh, int64_t n);

// ---- RMSNorm (Llama / Mixtral): y = x / sqrt(mean(x^2) + eps) * w -----------------------------
// x, y: [rows, dim]; w: [dim]; rstd: [rows] saved for the backward (may be null).
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                     int64_t dim, float eps);
// dx = assigned, dw += accumulated.
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      const float* rstd, int64_t rows, int64_t dim);

// ---- rotary position embedding, rotate-half convention (Hugging Face Llama/Mixtral) -----------
// x: [n_tok, n_heads, head_dim], token t at position pos[t]. For i < head_dim/2, with
// freq_i = theta^(-2i/head_dim), angle = pos * freq_i:
//   x'[i]        = x[i] cos - x[i + half] sin
//   x'[i + half] = x[i + half] cos + x[i] sin
// In place. The backward is the same rotation by -angle (inverse = transpose).
void rope_forward(float* x, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                  float theta);
void rope_backward(float* dx, const int32_t* pos, int64_t n_tok, int64_t n_heads,
                   int64_t head_dim, float theta);

// ---- causal grouped-query attention --------------------------------------------------------
// q: [B, T, Hq, D], k, v: [B, T, Hkv, D], Hq % Hkv == 0, query head h uses kv head h / (Hq/Hkv).
// out: [B, T, Hq, D] = softmax(q k^T / sqrt(D) + causal mask) v.
// probs: [B, Hq, T, T] saved for the backward (entries above the diagonal are 0).
void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D);
// dq, dk, dv assigned (same shapes as q, k, v).
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs,
                        const float* q, const float* k, const float* v, int64_t B, int64_t T,
                        int64_t Hq, int64_t Hkv, int64_t D);
// One new query position attending to a KV cache of n_ctx positions (the new one included):
// q: [Hq, D], kcache, vcache: [n_ctx, Hkv, D] (row stride Hkv*D), out: [Hq, D]. scratch >= n_ctx.
void attention_decode(float* out, const float* q, const float* kcache, const float* vcache,
                      int64_t n_ctx, int64_t Hq, int64_t Hkv, int64_t D, float* scratch);

// ---- cross-entropy over logits ---------------------------------------------------------------
// logits: [n, V]; targets[i] in [0, V) or -1 (ignored). nll[i] = -log softmax(logits[i])[t] (0 for
// ignored rows). Returns the sum of nll over counted rows (double for accuracy).
double cross_entropy_forward(float* nll, const float* logits, const int32_t* targets, int64_t n,
                             int64_t V);
// dlogits[i] = scale * (softmax(logits[i]) - onehot(t)); zero rows for ignored targets.
// dlogits may alias logits.
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, int64_t n,
                            int64_t V, float scale);

}  // namespace moe::kernels
