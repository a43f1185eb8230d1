#include "kernels/rmsnorm.h"

#include <cmath>
#include <vector>

namespace moe::kernels {

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                     int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (rows * dim > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * dim;
    float* b = y + r * dim;
    float ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += a[i] * a[i];
    const float rs = 1.0f / std::sqrt(ss / float(dim) + eps);
    if (rstd) rstd[r] = rs;
    for (int64_t i = 0; i < dim; ++i) b[i] = a[i] * rs * w[i];
  }
}

// y_i = x_i r w_i, r = (mean x^2 + eps)^-1/2: dx_i = r (dy_i w_i - x_i r^2 <dy*w, x> / dim)
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      const float* rstd, int64_t rows, int64_t dim) {
#pragma omp parallel for schedule(static) if (rows * dim > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * dim;
    const float* g = dy + r * dim;
    const float rs = rstd[r];
    float dot = 0;
    for (int64_t i = 0; i < dim; ++i) dot += g[i] * w[i] * a[i];
    const float c = rs * rs * dot / float(dim);
    float* o = dx + r * dim;
    for (int64_t i = 0; i < dim; ++i) o[i] = rs * (g[i] * w[i] - a[i] * c);
  }
  // dw sums over rows: columns split across threads, rows in order (deterministic).
#pragma omp parallel for schedule(static) if (rows * dim > 16384)
  for (int64_t i = 0; i < dim; ++i) {
    float acc = 0;
    for (int64_t r = 0; r < rows; ++r) acc += dy[r * dim + i] * x[r * dim + i] * rstd[r];
    dw[i] += acc;
  }
}

}  // namespace moe::kernels
