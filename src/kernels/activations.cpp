#include "kernels/activations.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace moe::kernels {

namespace {

// exp(x) within ~1 ulp without a libm call, so that the elementwise loops vectorise (the same
// routine as in softmax.cpp; see there). exp(-inf) = 0, exp(+inf) = inf, NaN stays NaN.
inline float exp_f32(float x) {
  constexpr float kLo = -87.33654f, kHi = 88.72283f;
  const float xc = std::min(std::max(x, kLo), kHi);
  const float t = xc * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  float r = n * -0.693359375f + xc;
  r = n * 2.12194440e-4f + r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t ni = std::bit_cast<int32_t>(t) - 0x4B400000;
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  const float s1 = std::bit_cast<float>((n1 + 127) << 23);
  const float s2 = std::bit_cast<float>((n2 + 127) << 23);
  float y = p * s1 * s2;
  y = x < kLo ? 0.0f : y;
  y = x > kHi ? INFINITY : y;
  return y;
}

// 1 + exp(-a): silu(a) = a / (1 + exp(-a)) as PyTorch computes it, sigmoid(a) = 1 / (1 + exp(-a)).
inline float one_plus_exp_neg(float a) { return 1.0f + exp_f32(-a); }

// Elementwise loops: split over threads only when large enough to pay for the parallel region.
constexpr int64_t kParallelMin = 1 << 16;

}  // namespace

void silu_forward(float* y, const float* a, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] / one_plus_exp_neg(a[i]);
}

// silu'(a) = s (1 + a (1 - s)), s = sigmoid(a)
void silu_backward(float* da, const float* a, const float* dy, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / one_plus_exp_neg(a[i]);
    da[i] = dy[i] * (s * (1.0f + a[i] * (1.0f - s)));
  }
}

void swiglu_forward(float* h, const float* g, const float* u, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) h[i] = g[i] / one_plus_exp_neg(g[i]) * u[i];
}

void swiglu_backward(float* dg, float* du, const float* g, const float* u, const float* dh,
                     int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float e = one_plus_exp_neg(g[i]);
    const float s = 1.0f / e;
    const float d = dh[i];  // read before dg[i] is written: dg may alias dh
    du[i] = d * (g[i] / e);
    dg[i] = d * u[i] * (s * (1.0f + g[i] * (1.0f - s)));
  }
}

}  // namespace moe::kernels
