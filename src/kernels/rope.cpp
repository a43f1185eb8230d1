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
void rotate(float* x, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t D, float theta,
            float sign) {
  const int64_t half = D / 2;
  std::vector<float> inv_freq(half);
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = 1.0f / std::pow(theta, float(2 * i) / float(D));
  const float* inv = inv_freq.data();
#pragma omp parallel if (n_tok > 1 && n_tok * n_heads * D >= (1 << 15))
  {
    std::vector<float> cs(half), sn(half);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n_tok; ++t) {
      const float p = float(pos[t]);
      for (int64_t i = 0; i < half; ++i) {
        const float ang = p * inv[i];
        cs[i] = std::cos(ang);
        sn[i] = sign * std::sin(ang);
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

void rope_forward(float* x, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                  float theta) {
  rotate(x, pos, n_tok, n_heads, head_dim, theta, 1.0f);
}

void rope_backward(float* dx, const int32_t* pos, int64_t n_tok, int64_t n_heads,
                   int64_t head_dim, float theta) {
  rotate(dx, pos, n_tok, n_heads, head_dim, theta, -1.0f);
}

}  // namespace moe::kernels
