#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>

namespace moe::kernels {

void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * cols;
    float* b = y + r * cols;
    float mx = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, a[c]);
    float s = 0;
    for (int64_t c = 0; c < cols; ++c) s += b[c] = std::exp(a[c] - mx);
    const float inv = 1.0f / s;
    for (int64_t c = 0; c < cols; ++c) b[c] *= inv;
  }
}

void softmax_backward(float* dx, const float* y, const float* dy, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = y + r * cols;
    const float* g = dy + r * cols;
    float* o = dx + r * cols;
    float s = 0;
    for (int64_t c = 0; c < cols; ++c) s += p[c] * g[c];
    for (int64_t c = 0; c < cols; ++c) o[c] = p[c] * (g[c] - s);
  }
}

void logsumexp_rows(float* lse, const float* x, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * cols;
    float mx = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, a[c]);
    if (std::isinf(mx)) {
      lse[r] = mx;
      continue;
    }
    float s = 0;
    for (int64_t c = 0; c < cols; ++c) s += std::exp(a[c] - mx);
    lse[r] = mx + std::log(s);
  }
}

}  // namespace moe::kernels
