#include "kernels/rmsnorm.h"

#include <algorithm>
#include <cmath>

#include "core/exact_sums.h"

namespace moe::kernels {

namespace {
constexpr int64_t kParallelMin = 1 << 15;  // elements below which one thread is faster
constexpr int64_t kColBlock = 256;         // dw columns per task: 1 KiB of each row
}  // namespace

// As Hugging Face's LlamaRMSNorm in float32: y = w * (x * rsqrt(mean(x^2) + eps)).
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                     int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (rows > 1 && rows * dim >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * dim;
    float* b = y + r * dim;
    float ss = 0.0f;  // vector partial sums: error grows ~ dim / width, not dim
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < dim; ++i) ss += a[i] * a[i];
    const float rs = 1.0f / std::sqrt(ss / float(dim) + eps);
    if (rstd) rstd[r] = rs;
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) b[i] = w[i] * (a[i] * rs);
  }
}

// With r = rstd, y_i = w_i x_i r and dr/dx_j = -x_j r^3 / dim:
//   dx_j = r (dy_j w_j - x_j r^2 <dy * w, x> / dim),   dw_i += sum_rows dy_i x_i r.
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      const float* rstd, int64_t rows, int64_t dim) {
  const bool par = rows * dim >= kParallelMin;
#pragma omp parallel if (par)
  {
#pragma omp for schedule(static) nowait
    for (int64_t r = 0; r < rows; ++r) {
      const float* a = x + r * dim;
      const float* g = dy + r * dim;
      const float rs = rstd[r];
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < dim; ++i) dot += g[i] * w[i] * a[i];
      const float c = rs * rs * dot / float(dim);
      float* o = dx + r * dim;
#pragma omp simd
      for (int64_t i = 0; i < dim; ++i) o[i] = rs * (g[i] * w[i] - a[i] * c);
    }
    // dw: blocks of columns over threads, rows summed in order inside each block, so the result
    // does not depend on the thread count. Reads only dy, x, rstd: no barrier needed above.
    const int64_t nblk = (dim + kColBlock - 1) / kColBlock;
    // Layout-exact mode (core/exact_sums.h): the rows' terms add up in double, in dw's accumulator.
    if (double* acc64 = exact::enabled() ? exact::accumulator(dw) : nullptr) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < dim; ++i) {
        double s = 0;
        for (int64_t r = 0; r < rows; ++r) s += double(dy[r * dim + i] * x[r * dim + i] * rstd[r]);
        acc64[i] += s;
      }
    } else {
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < nblk; ++blk) {
      const int64_t i0 = blk * kColBlock, i1 = std::min(dim, i0 + kColBlock);
      float acc[kColBlock] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float* a = x + r * dim;
        const float* g = dy + r * dim;
        const float rs = rstd[r];
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i) acc[i - i0] += g[i] * a[i] * rs;
      }
      for (int64_t i = i0; i < i1; ++i) dw[i] += acc[i - i0];
    }
    }
  }
}

}  // namespace moe::kernels
