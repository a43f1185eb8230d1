#pragma once
// Softmax over the last dimension.
// Raw row-major float buffers; outputs first; activation gradients are assigned, parameter
// gradients accumulate (+=).
#include <cstdint>

namespace moe::kernels {

// y[r, c] = exp(x[r,c] - max_r) / sum; y may alias x.
void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols);
// dx = y * (dy - sum(dy * y)); dx may alias dy.
void softmax_backward(float* dx, const float* y, const float* dy, int64_t rows, int64_t cols);
// lse[r] = log(sum_c exp(x[r,c])) (numerically stable)
void logsumexp_rows(float* lse, const float* x, int64_t rows, int64_t cols);

}  // namespace moe::kernels
