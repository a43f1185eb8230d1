#include "kernels/topk.h"

#include <cmath>

#include "core/error.h"

namespace moe::kernels {

namespace {

// Strict "ranks before" in (value descending) order, NaN ranking above every number as in
// torch.topk. Equal values never rank before one another, so scanning columns in increasing order
// and inserting only on a strict win keeps the lower index first among ties.
inline bool ranks_before(float a, float b) { return a > b || (std::isnan(a) && !std::isnan(b)); }

}  // namespace

// One pass per row keeping the best k so far in a sorted buffer (insertion): O(cols) when, as
// usual, few columns beat the current k-th value, O(cols * k) at worst. Suited to the small k of
// MoE routing and product-key retrieval; no allocation.
void topk_rows(int32_t* idx, float* val, const float* x, int64_t rows, int64_t cols, int k) {
  MOE_ASSERT(k >= 0 && k <= cols);
  if (k == 0) return;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * cols >= (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * cols;
    int32_t* id = idx + r * k;
    float* v = val + r * k;
    int filled = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const float xc = a[c];
      int p;
      if (filled < k) {
        p = filled++;
      } else {
        if (!ranks_before(xc, v[k - 1])) continue;
        p = k - 1;
      }
      for (; p > 0 && ranks_before(xc, v[p - 1]); --p) {
        v[p] = v[p - 1];
        id[p] = id[p - 1];
      }
      v[p] = xc;
      id[p] = int32_t(c);
    }
  }
}

}  // namespace moe::kernels
