#pragma once
// Row-major single-precision GEMM through oneDNN (it detects AVX-512 here; Debian's OpenBLAS does
// not). C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, op = transpose when trans_* is true.
// lda/ldb/ldc are the row strides of A, B, C as stored.
#include <cstdint>

namespace moe::kernels {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Naive triple loop (double accumulation): the reference the tests hold gemm() to.
void gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc);

// Linear layer helpers, weights stored as [out, in] (PyTorch / Hugging Face layout).
// y[n, out] = x[n, in] W^T (+ y when accumulate)
void linear_forward(float* y, const float* x, const float* W, int64_t n, int64_t in, int64_t out,
                    bool accumulate = false);
// dx[n, in] = dy[n, out] W (+ dx when accumulate); dW[out, in] += dy^T x
void linear_backward_input(float* dx, const float* dy, const float* W, int64_t n, int64_t in,
                           int64_t out, bool accumulate = false);
void linear_backward_weight(float* dW, const float* dy, const float* x, int64_t n, int64_t in,
                            int64_t out);

}  // namespace moe::kernels
