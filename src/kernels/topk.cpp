#include "kernels/topk.h"

#include <cmath>

namespace moe::kernels {

// Repeated selection: O(k * cols) per row, the fastest for the small k of MoE routing (k <= 8,
// cols <= a few hundred), with no allocation. NaN never wins.
void topk_rows(int32_t* idx, float* val, const float* x, int64_t rows, int64_t cols, int k) {
#pragma omp parallel for schedule(static) if (rows * cols * k > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * cols;
    int32_t* id = idx + r * k;
    float* v = val + r * k;
    for (int j = 0; j < k; ++j) {
      // The best element strictly below the previous pick in (value desc, index asc) order.
      int64_t best = -1;
      for (int64_t c = 0; c < cols; ++c) {
        if (j > 0) {
          const float pv = v[j - 1];
          const int64_t pi = id[j - 1];
          if (a[c] > pv || (a[c] == pv && c <= pi)) continue;  // already taken or ahead of it
        }
        if (std::isnan(a[c])) continue;
        if (best < 0 || a[c] > a[best]) best = c;
      }
      if (best < 0) best = 0;  // all NaN (or k > cols): deterministic fallback
      id[j] = int32_t(best);
      v[j] = a[best];
    }
  }
}

}  // namespace moe::kernels
