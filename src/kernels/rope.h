#pragma once
// Rotary position embedding, rotate-half convention (Hugging Face Llama/Mixtral).
// Raw row-major float buffers; outputs first; activation gradients are assigned, parameter
// gradients accumulate (+=).
#include <cstdint>
#include <vector>

namespace moe::kernels {

// x: [n_tok, n_heads, head_dim], token t at position pos[t]. For i < head_dim/2, with
// freq_i = theta^(-2i/head_dim), angle = pos * freq_i:
//   x'[i]        = x[i] cos - x[i + half] sin
//   x'[i + half] = x[i + half] cos + x[i] sin
// In place. The backward is the same rotation by -angle (inverse = transpose).
void rope_forward(float* x, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                  float theta);
void rope_backward(float* dx, const int32_t* pos, int64_t n_tok, int64_t n_heads,
                   int64_t head_dim, float theta);
// inv_freq_i = 1 / theta^(2i/head_dim) in float32, as above: [head_dim / 2].
std::vector<float> rope_inv_freq(int64_t head_dim, float theta);
// The same rotation with given frequencies (e.g. YaRN's, nn/rope_scaling.h), cos and sin both
// multiplied by scale; the backward multiplies by scale and rotates by -angle.
void rope_forward_freq(float* x, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                       const float* inv_freq, float scale = 1.0f);
void rope_backward_freq(float* dx, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                        const float* inv_freq, float scale = 1.0f);

}  // namespace moe::kernels
