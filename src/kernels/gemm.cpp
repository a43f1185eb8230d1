#include "kernels/gemm.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/exact_sums.h"
#include "core/tensor.h"

namespace moe::kernels {

namespace {

// Layout-exact mode (core/exact_sums.h): oneDNN picks its kernel, and with it the order of a row's
// products, by the GEMM's size and thread count, so the same row computed in a GEMM of another
// size can differ in its last bits. Here every call has kExactRows rows (the last chunk padded with
// zero rows) and runs single-threaded inside our own parallel loop over chunks.
constexpr int64_t kExactRows = 64;

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda,
                                B, ldb, beta, C, ldc);
  MOE_ASSERT(st == dnnl_success);
}

void gemm_row_chunks(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t chunks = (M + kExactRows - 1) / kExactRows;
  // Always inside a parallel region (even for one chunk): oneDNN then runs each call on one thread.
#pragma omp parallel for schedule(dynamic, 1) if (!omp_in_parallel())
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t r0 = c * kExactRows, m = std::min(kExactRows, M - r0);
    if (m == kExactRows) {
      sgemm(false, trans_b, m, N, K, alpha, A + r0 * lda, lda, B, ldb, beta, C + r0 * ldc, ldc);
      continue;
    }
    // The padded tail keeps the operands' strides: the call differs from a full chunk's only in data.
    std::vector<float> a(size_t(kExactRows * lda), 0.0f), cc(size_t(kExactRows * ldc), 0.0f);
    for (int64_t r = 0; r < m; ++r) {
      std::memcpy(a.data() + r * lda, A + (r0 + r) * lda, sizeof(float) * K);
      if (beta != 0.0f) std::memcpy(cc.data() + r * ldc, C + (r0 + r) * ldc, sizeof(float) * N);
    }
    sgemm(false, trans_b, kExactRows, N, K, alpha, a.data(), lda, B, ldb, beta, cc.data(), ldc);
    for (int64_t r = 0; r < m; ++r) std::memcpy(C + (r0 + r) * ldc, cc.data() + r * ldc, sizeof(float) * N);
  }
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  if (!trans_a && exact::enabled()) {
    gemm_row_chunks(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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

// oneDNN 2.6 on AVX2 runs thin products (1/M + 1/N >= 0.0038 for C [M, N]) with its no-copy kernel,
// which walks the operands in place; when an operand's row stride is a multiple of 256 floats its
// rows alias the same cache sets and the GEMM runs at 40-70% of its speed (dx = dy W at 128 x 1024 x
// 2048: 35 vs 63 GFLOP/s on one core; dW = dy^T x at 512 x 512 x 256: 58 vs 75; docs/performance.md).
// Its AVX-512 path already switches to the copy-based kernel on such strides; on AVX2 we hand it
// copies with padded rows instead. The forward's x W^T measured no gain, so it is left alone. Below
// 64 rows a product is bound by reading its weights, and copying them costs more than it saves.
bool thin_on_avx2(int64_t M, int64_t N) {
  static const bool avx512 =
      (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
  return !avx512 && M >= 64 && N >= 64 && 1.0 / double(M) + 1.0 / double(N) >= 0.0038;
}
bool aliasing_stride(int64_t ld) { return ld >= 256 && ld % 256 == 0; }

constexpr int64_t kRowPad = 16;  // floats: 64 bytes, one cache line

// X [rows, cols] copied into per-thread buffer `slot` with row stride cols + kRowPad (reused: no
// allocation once it has grown to the largest operand).
const float* padded_copy(int slot, const float* X, int64_t rows, int64_t cols) {
  static thread_local avector<float> bufs[2];
  avector<float>& buf = bufs[slot];
  const int64_t ld = cols + kRowPad;
  if (int64_t(buf.size()) < rows * ld) buf.resize(rows * ld);
  float* dst = buf.data();  // the parallel loop's workers must not read the thread_local
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && rows * cols >= (1 << 18))
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * ld, X + r * cols, sizeof(float) * cols);
  return dst;
}

}  // namespace

void linear_backward_input(float* dx, const float* dy, const float* W, int64_t n, int64_t in,
                           int64_t out, bool accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  if (thin_on_avx2(n, in) && aliasing_stride(in)) {
    gemm(false, false, n, in, out, 1.0f, dy, out, padded_copy(0, W, out, in), in + kRowPad, beta, dx, in);
    return;
  }
  gemm(false, false, n, in, out, 1.0f, dy, out, W, in, beta, dx, in);
}

namespace {

// Layout-exact mode: dW's double accumulator += one GEMM per block of rows (the same calls in every
// layout), blocks in parallel, each GEMM on one thread.
void linear_backward_weight_exact(double* acc, const float* dy, const float* x, int64_t n, int64_t in,
                                  int64_t out) {
  const std::vector<int64_t> blocks = exact::row_blocks(n);
  const int64_t nb = int64_t(blocks.size()), sz = out * in;
  std::vector<int64_t> start(size_t(nb) + 1, 0);
  for (int64_t b = 0; b < nb; ++b) start[b + 1] = start[b] + blocks[b];
  static thread_local avector<float> part_buf;
  avector<float>& part = part_buf;
  if (int64_t(part.size()) < nb * sz) part.resize(nb * sz);
  float* P = part.data();
#pragma omp parallel for schedule(dynamic, 1) if (!omp_in_parallel())
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t r0 = start[b], len = blocks[b];
    if (len > 0) sgemm(true, false, out, in, len, 1.0f, dy + r0 * out, out, x + r0 * in, in, 0.0f, P + b * sz, in);
  }
  for (int64_t b = 0; b < nb; ++b) {
    if (blocks[b] == 0) continue;
    const float* pb = P + b * sz;
#pragma omp parallel for simd schedule(static) if (!omp_in_parallel() && sz >= (1 << 16))
    for (int64_t i = 0; i < sz; ++i) acc[i] += double(pb[i]);
  }
}

}  // namespace

void linear_backward_weight(float* dW, const float* dy, const float* x, int64_t n, int64_t in,
                            int64_t out) {
  if (exact::enabled()) {
    double* acc = exact::accumulator(dW);
    MOE_ASSERT(acc != nullptr);  // every parameter gradient has one in this mode
    linear_backward_weight_exact(acc, dy, x, n, in, out);
    return;
  }
  int64_t ldy = out, ldx = in;
  if (thin_on_avx2(out, in) && n >= 64) {
    if (aliasing_stride(out)) dy = padded_copy(0, dy, n, out), ldy = out + kRowPad;
    if (aliasing_stride(in)) x = padded_copy(1, x, n, in), ldx = in + kRowPad;
  }
  gemm(true, false, out, in, n, 1.0f, dy, ldy, x, ldx, 1.0f, dW, in);
}

}  // namespace moe::kernels
