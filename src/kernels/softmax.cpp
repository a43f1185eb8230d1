#include "kernels/softmax.h"

#include "kernels/vec_math.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace moe::kernels {

namespace {


inline float row_max(const float* a, int64_t n) {
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int64_t c = 0; c < n; ++c) mx = std::max(mx, a[c]);
  return mx;
}

// y[c] = exp(x[c] - mx), returns the float sum (vector partial sums: pairwise-like accuracy).
// y may alias x (each element is read before it is written).
inline float exp_shift_sum(float* y, const float* x, int64_t n, float mx) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < n; ++c) {
    const float e = exp_f32(x[c] - mx);
    y[c] = e;
    s += e;
  }
  return s;
}

inline float shift_sum(const float* x, int64_t n, float mx) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < n; ++c) s += exp_f32(x[c] - mx);
  return s;
}

// Runs row(r) for every row, over threads only when there is enough work: below kParallelMin
// elements, and for the single rows that attention and cross-entropy pass one at a time, even a
// parallel region with a false if-clause costs more (~0.3 us) than a short row.
constexpr int64_t kParallelMin = 1 << 15;

template <class RowFn>
void for_each_row(int64_t rows, int64_t cols, const RowFn& row) {
  if (rows == 1 || rows * cols < kParallelMin) {
    for (int64_t r = 0; r < rows; ++r) row(r);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) row(r);
}

}  // namespace

void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols) {
  for_each_row(rows, cols, [=](int64_t r) {
    const float* a = x + r * cols;
    float* b = y + r * cols;
    const float mx = row_max(a, cols);
    const float inv = 1.0f / exp_shift_sum(b, a, cols, mx);
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) b[c] *= inv;
  });
}

void softmax_backward(float* dx, const float* y, const float* dy, int64_t rows, int64_t cols) {
  for_each_row(rows, cols, [=](int64_t r) {
    const float* p = y + r * cols;
    const float* g = dy + r * cols;
    float* o = dx + r * cols;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; ++c) s += p[c] * g[c];
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) o[c] = p[c] * (g[c] - s);  // dx may alias dy
  });
}

void logsumexp_rows(float* lse, const float* x, int64_t rows, int64_t cols) {
  for_each_row(rows, cols, [=](int64_t r) {
    const float* a = x + r * cols;
    const float mx = row_max(a, cols);
    // All -inf (or an empty row): log(0) = -inf. +inf: inf. Avoids inf - inf = NaN.
    lse[r] = std::isinf(mx) ? mx : mx + std::log(shift_sum(a, cols, mx));
  });
}

}  // namespace moe::kernels
