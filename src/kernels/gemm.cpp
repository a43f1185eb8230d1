#include "kernels/gemm.h"

#include <dnnl.h>

#include "core/error.h"

namespace moe::kernels {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda,
                                B, ldb, beta, C, ldc);
  MOE_ASSERT(st == dnnl_success);
}

void gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += double(a) * b;
      }
      float prev = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
      C[i * ldc + j] = float(alpha * acc) + prev;
    }
}

void linear_forward(float* y, const float* x, const float* W, int64_t n, int64_t in, int64_t out,
                    bool accumulate) {
  gemm(false, true, n, out, in, 1.0f, x, in, W, in, accumulate ? 1.0f : 0.0f, y, out);
}

void linear_backward_input(float* dx, const float* dy, const float* W, int64_t n, int64_t in,
                           int64_t out, bool accumulate) {
  gemm(false, false, n, in, out, 1.0f, dy, out, W, in, accumulate ? 1.0f : 0.0f, dx, in);
}

void linear_backward_weight(float* dW, const float* dy, const float* x, int64_t n, int64_t in,
                            int64_t out) {
  gemm(true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dW, in);
}

}  // namespace moe::kernels
