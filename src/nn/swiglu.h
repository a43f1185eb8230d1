#pragma once
// The SwiGLU MLP on raw buffers, shared by the dense FFN and every expert of an expert bank:
//   g = x W1^T, u = x W3^T, h = silu(g) * u, y = h W2^T
// W1, W3: [F, d] (gate_proj / w1, up_proj / w3), W2: [d, F] (down_proj / w2).
#include <cstdint>

#include "kernels/gemm_16bit.h"

namespace moe {

// The forward takes f32 or 16-bit weights (kernels/gemm_16bit.h); the backward needs f32.
struct SwiGLUWeights {
  kernels::MatrixRef w1;  // [F, d]
  kernels::MatrixRef w3;  // [F, d]
  kernels::MatrixRef w2;  // [d, F]
  int64_t d, f;
};
struct SwiGLUGrads {
  float* w1;  // [F, d], accumulated
  float* w3;
  float* w2;  // [d, F]
};

// y: [n, d] (assigned, or added to when accumulate); g, u, h: [n, F] saved for the backward.
void swiglu_mlp_forward(float* y, float* g, float* u, float* h, const float* x, int64_t n,
                        const SwiGLUWeights& w, bool accumulate = false);
// dx: [n, d] assigned; it may alias x. Parameter gradients accumulate. The forward's saves g, u, h
// are overwritten with dg, du, dh: a backward consumes its forward, and needs no [n, F] scratch.
void swiglu_mlp_backward(float* dx, const SwiGLUGrads& dw, const float* dy, const float* x, float* g,
                         float* u, float* h, int64_t n, const SwiGLUWeights& w);

}  // namespace moe
