#include "kernels/rope.h"

#include <cmath>
#include <vector>

namespace moe::kernels {

namespace {

// Angles in float32 exactly as Hugging Face computes them in PyTorch:
//   inv_freq = 1.0 / (theta ** (arange(0, D, 2).float() / D))   -> 1 / powf(theta, float(2i) / D)
//   angle    = float(pos) * inv_freq;  cos, sin in float32
// (PyTorch's vectorised powf is 1-ulp, glibc's nearly correctly rounded: for a few (i, D, theta)
// inv_freq differs in the last bit, which moves the angle by at most one float ulp.)
// sign = -1 rotates by -angle: the inverse, hence the backward.
// scale multiplies cos and sin (YaRN's attention factor).
void rotate(float* x, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t D, const float* inv,
            float sign, float scale) {
  const int64_t half = D / 2;
#pragma omp parallel if (n_tok > 1 && n_tok * n_heads * D >= (1 << 15))
  {
    std::vector<float> cs(half), sn(half);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n_tok; ++t) {
      const float p = float(pos[t]);
      for (int64_t i = 0; i < half; ++i) {
        const float ang = p * inv[i];
        cs[i] = std::cos(ang) * scale;
        sn[i] = sign * std::sin(ang) * scale;
      }
      for (int64_t h = 0; h < n_heads; ++h) {
        float* lo = x + (t * n_heads + h) * D;
        float* hi = lo + half;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float a = lo[i], b = hi[i];
          lo[i] = a * cs[i] - b * sn[i];
          hi[i] = b * cs[i] + a * sn[i];
        }
      }
    }
  }
}

}  // namespace

std::vector<float> rope_inv_freq(int64_t head_dim, float theta) {
  std::vector<float> inv_freq(head_dim / 2);
  for (int64_t i = 0; i < head_dim / 2; ++i)
    inv_freq[i] = 1.0f / std::pow(theta, float(2 * i) / float(head_dim));
  return inv_freq;
}

void rope_forward(float* x, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                  float theta) {
  rotate(x, pos, n_tok, n_heads, head_dim, rope_inv_freq(head_dim, theta).data(), 1.0f, 1.0f);
}

void rope_backward(float* dx, const int32_t* pos, int64_t n_tok, int64_t n_heads,
                   int64_t head_dim, float theta) {
  rotate(dx, pos, n_tok, n_heads, head_dim, rope_inv_freq(head_dim, theta).data(), -1.0f, 1.0f);
}

void rope_forward_freq(float* x, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                       const float* inv_freq, float scale) {
  rotate(x, pos, n_tok, n_heads, head_dim, inv_freq, 1.0f, scale);
}

void rope_backward_freq(float* dx, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                        const float* inv_freq, float scale) {
  rotate(dx, pos, n_tok, n_heads, head_dim, inv_freq, -1.0f, scale);
}

}  // namespace moe::kernels
