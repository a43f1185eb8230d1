#include "kernels/activations.h"

#include <cmath>

namespace moe::kernels {

namespace {
inline float sigmoid(float a) { return 1.0f / (1.0f + std::exp(-a)); }
}  // namespace

void silu_forward(float* y, const float* a, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * sigmoid(a[i]);
}

void silu_backward(float* da, const float* a, const float* dy, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float s = sigmoid(a[i]);
    da[i] = dy[i] * s * (1.0f + a[i] * (1.0f - s));
  }
}

void swiglu_forward(float* h, const float* g, const float* u, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) h[i] = g[i] * sigmoid(g[i]) * u[i];
}

void swiglu_backward(float* dg, float* du, const float* g, const float* u, const float* dh, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float s = sigmoid(g[i]);
    const float d = dh[i];  // read before dg[i] is written: dg may alias dh
    du[i] = d * g[i] * s;
    dg[i] = d * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
}

}  // namespace moe::kernels
