#include "nn/swiglu.h"

#include "kernels/activations.h"
#include "kernels/gemm.h"
#include "kernels/gemm_16bit.h"

namespace moe {

void swiglu_mlp_forward(float* y, float* g, float* u, float* h, const float* x, int64_t n,
                        const SwiGLUWeights& w, bool accumulate) {
  if (n == 0) return;
  kernels::linear_forward(g, x, w.w1, n, w.d, w.f);
  kernels::linear_forward(u, x, w.w3, n, w.d, w.f);
  kernels::swiglu_forward(h, g, u, n * w.f);
  kernels::linear_forward(y, h, w.w2, n, w.f, w.d, accumulate);
}

void swiglu_mlp_backward(float* dx, const SwiGLUGrads& dw, const float* dy, const float* x, float* g,
                         float* u, float* h, int64_t n, const SwiGLUWeights& w) {
  if (n == 0) return;
  // y = h W2^T: dW2 += dy^T h, then dh = dy W2 written over h.
  kernels::linear_backward_weight(dw.w2, dy, h, n, w.f, w.d);
  float* dh = h;
  kernels::linear_backward_input(dh, dy, w.w2.need_f32("backward"), n, w.f, w.d);
  // h = silu(g) * u: dg over g, du over u (elementwise, each read before written).
  kernels::swiglu_backward(g, u, g, u, dh, n * w.f);
  const float* dg = g;
  const float* du = u;
  // g = x W1^T, u = x W3^T: dW1 += dg^T x; dW3 += du^T x; then dx = dg W1 + du W3 (x may be dx).
  kernels::linear_backward_weight(dw.w1, dg, x, n, w.d, w.f);
  kernels::linear_backward_weight(dw.w3, du, x, n, w.d, w.f);
  kernels::linear_backward_input(dx, dg, w.w1.need_f32("backward"), n, w.d, w.f);
  kernels::linear_backward_input(dx, du, w.w3.need_f32("backward"), n, w.d, w.f, /*accumulate=*/true);
}

}  // namespace moe
