#include "kernels/gemm.h"

#include <dnnl.h>
#include <omp.h>

#include <cstring>

#include "core/error.h"
#include "core/tensor.h"

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

namespace {

// oneDNN 2.6 runs dy[n, out] x W[out, in] on AVX2 with its no-copy kernel when the product is thin
// (1/n + 1/in >= 0.0038), which walks W's rows in place; with `in` a multiple of 256 floats those
// rows alias the same cache sets and the GEMM runs at 40-50% of its speed (128 x 1024 x 2048: 35 vs
// 63 GFLOP/s on one core, docs/performance.md). Its AVX-512 path already switches to the copy-based
// kernel on such leading dimensions; on AVX2 we hand it a copy of W with padded rows instead.
// Below 64 rows the product is bound by reading W, and copying it costs more than it saves.
bool pad_weight_rows(int64_t n, int64_t in) {
  static const bool avx512 = (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
  return !avx512 && n >= 64 && in >= 256 && in % 256 == 0 && 1.0 / double(n) + 1.0 / double(in) >= 0.0038;
}

constexpr int64_t kRowPad = 16;  // floats: 64 bytes, one cache line

// W [rows, cols] copied into a per-thread buffer with row stride cols + kRowPad (reused: no
// allocation once it has grown to the largest weight).
const float* padded_copy(const float* W, int64_t rows, int64_t cols) {
  static thread_local avector<float> buf;
  const int64_t ld = cols + kRowPad;
  if (int64_t(buf.size()) < rows * ld) buf.resize(rows * ld);
  float* dst = buf.data();
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && rows * cols >= (1 << 18))
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * ld, W + r * cols, sizeof(float) * cols);
  return dst;
}

}  // namespace

void linear_backward_input(float* dx, const float* dy, const float* W, int64_t n, int64_t in,
                           int64_t out, bool accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  if (pad_weight_rows(n, in)) {
    const float* Wp = padded_copy(W, out, in);
    gemm(false, false, n, in, out, 1.0f, dy, out, Wp, in + kRowPad, beta, dx, in);
    return;
  }
  gemm(false, false, n, in, out, 1.0f, dy, out, W, in, beta, dx, in);
}

void linear_backward_weight(float* dW, const float* dy, const float* x, int64_t n, int64_t in,
                            int64_t out) {
  gemm(true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dW, in);
}

}  // namespace moe::kernels
