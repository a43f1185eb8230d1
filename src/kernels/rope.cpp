#include "kernels/rope.h"

#include <cmath>
#include <vector>

namespace moe::kernels {

namespace {

// Frequencies computed the way Hugging Face does in float32: inv_freq = 1 / theta^(2i/D),
// angle = float(pos) * inv_freq, then cos/sin in float32.
void rotate(float* x, const int32_t* pos, int64_t n, int64_t H, int64_t D, float theta, float sign) {
  const int64_t half = D / 2;
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) inv[i] = 1.0f / std::pow(theta, float(2 * i) / float(D));
#pragma omp parallel for schedule(static) if (n * H * D > 16384)
  for (int64_t t = 0; t < n; ++t) {
    float cs[512], sn[512];  // head_dim <= 1024
    const int64_t hh = half < 512 ? half : 512;
    for (int64_t i = 0; i < hh; ++i) {
      const float ang = float(pos[t]) * inv[i];
      cs[i] = std::cos(ang);
      sn[i] = sign * std::sin(ang);
    }
    for (int64_t h = 0; h < H; ++h) {
      float* v = x + (t * H + h) * D;
      for (int64_t i = 0; i < hh; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cs[i] - b * sn[i];
        v[i + half] = b * cs[i] + a * sn[i];
      }
    }
  }
}

}  // namespace

void rope_forward(float* x, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t head_dim, float theta) {
  rotate(x, pos, n_tok, n_heads, head_dim, theta, 1.0f);
}

// The rotation is orthogonal: its backward is the rotation by -angle.
void rope_backward(float* dx, const int32_t* pos, int64_t n_tok, int64_t n_heads, int64_t head_dim, float theta) {
  rotate(dx, pos, n_tok, n_heads, head_dim, theta, -1.0f);
}

}  // namespace moe::kernels
