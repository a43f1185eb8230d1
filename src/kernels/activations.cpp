#include "kernels/activations.h"

#include "kernels/vec_math.h"

namespace moe::kernels {

namespace {

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
    // All reads before the writes: dg may alias g or dh, du may alias u.
    const float gi = g[i], ui = u[i], d = dh[i];
    const float e = one_plus_exp_neg(gi);
    const float s = 1.0f / e;
    du[i] = d * (gi / e);
    dg[i] = d * ui * (s * (1.0f + gi * (1.0f - s)));
  }
}

}  // namespace moe::kernels
