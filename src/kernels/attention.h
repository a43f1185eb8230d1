#pragma once
// Grouped-query attention, causal (decoders) or bidirectional (encoders: causal = false).
// Raw row-major float buffers; outputs first; activation gradients are assigned, parameter
// gradients accumulate (+=).
#include <cstdint>

namespace moe::kernels {

// q: [B, T, Hq, D], k, v: [B, T, Hkv, D], Hq % Hkv == 0, query head h uses kv head h / (Hq/Hkv).
// out: [B, T, Hq, D] = softmax(q k^T / sqrt(D) + causal mask) v (no mask when !causal).
// probs: [B, Hq, T, T] saved for the backward (causal: entries above the diagonal are 0).
void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, bool causal = true);
// dq, dk, dv assigned (same shapes as q, k, v).
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs,
                        const float* q, const float* k, const float* v, int64_t B, int64_t T,
                        int64_t Hq, int64_t Hkv, int64_t D, bool causal = true);
// n new query positions after `past` cached ones (a prefill, inference only: no probabilities kept),
// causal: query i, at position past + i, attends to keys 0..past + i.
// q: [n, Hq, D], k, v: [past + n, Hkv, D] (the cache, the new positions last), out: [n, Hq, D].
// Memory: one [64, past + n] block of scores per thread, not [Hq, n, n].
void attention_prefill(float* out, const float* q, const float* k, const float* v, int64_t n, int64_t past,
                       int64_t Hq, int64_t Hkv, int64_t D);
// One new query position attending to a KV cache of n_ctx positions (the new one included):
// q: [Hq, D], kcache, vcache: [n_ctx, Hkv, D] (row stride Hkv*D), out: [Hq, D]. scratch >= n_ctx.
void attention_decode(float* out, const float* q, const float* kcache, const float* vcache,
                      int64_t n_ctx, int64_t Hq, int64_t Hkv, int64_t D, float* scratch);

}  // namespace moe::kernels
