#pragma once
// RMSNorm (Llama / Mixtral): y = x / sqrt(mean(x^2) + eps) * w.
// Raw row-major float buffers; outputs first; activation gradients are assigned, parameter
// gradients accumulate (+=).
#include <cstdint>

namespace moe::kernels {

// x, y: [rows, dim]; w: [dim]; rstd: [rows] saved for the backward (may be null).
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                     int64_t dim, float eps);
// dx = assigned, dw += accumulated.
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      const float* rstd, int64_t rows, int64_t dim);

}  // namespace moe::kernels
