#include "kernels/softmax.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace moe::kernels {

namespace {

// exp(x) in float, within ~1 ulp (1.01 measured over the float range), written without a libm
// call so that GCC vectorises the loops that use it (without -ffast-math glibc's vector expf is
// never used). Cephes' range reduction
// x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r, and 2^n built in the exponent bits
// as 2^(n/2) * 2^(n - n/2) so that n = 128 (x near 88.7) does not overflow early.
// exp(-inf) = 0, exp(+inf) = inf, exp(NaN) = NaN; results below FLT_MIN flush to 0.
inline float exp_f32(float x) {
  constexpr float kLo = -87.33654f, kHi = 88.72283f;
  const float xc = std::min(std::max(x, kLo), kHi);  // NaN passes through
  const float t = xc * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: rounds to an integer
  const float n = t - 12582912.0f;
  float r = n * -0.693359375f + xc;  // ln2 in two parts (Cody-Waite)
  r = n * 2.12194440e-4f + r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t ni = std::bit_cast<int32_t>(t) - 0x4B400000;  // n as an integer, in [-126, 128]
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  const float s1 = std::bit_cast<float>((n1 + 127) << 23);
  const float s2 = std::bit_cast<float>((n2 + 127) << 23);
  float y = p * s1 * s2;
  y = x < kLo ? 0.0f : y;
  y = x > kHi ? INFINITY : y;
  return y;
}

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
