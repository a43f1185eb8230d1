#include "kernels/topk.h"

#include <cmath>

#include "core/error.h"

namespace moe::kernels {

namespace {

// Strict "ranks before" in (value descending) order, NaN ranking above every number as in
// torch.topk. Equal values never rank before one another, so scanning columns in increasing order
// and inserting only on a strict win keeps the lower index first among ties.
inline bool ranks_before(float a, float b) { return a > b || (std::isnan(a) && !std::isnan(b)); }

// One pass per row keeping the best k so far in a sorted buffer (insertion): O(cols) when, as
// usual, few columns beat the current k-th value, O(cols * k) at worst. Suited to the small k of
// MoE routing and product-key retrieval; no allocation.
void topk_row(int32_t* id, float* v, const float* a, int64_t cols, int k) {
  int filled = 0;
  auto push = [&](int64_t c) {
    const float xc = a[c];
    int p;
    if (filled < k) {
      p = filled++;
    } else {
      if (!ranks_before(xc, v[k - 1])) return;
      p = k - 1;
    }
    for (; p > 0 && ranks_before(xc, v[p - 1]); --p) {
      v[p] = v[p - 1];
      id[p] = id[p - 1];
    }
    v[p] = xc;
    id[p] = int32_t(c);
  };
  int64_t c = 0;
  for (; c < cols && filled < k; ++c) push(c);
  // Once the buffer is full, a block of 16 columns is first tested against the k-th value in one
  // vector compare: after the first few blocks almost none holds a candidate.
  constexpr int64_t B = 16;
  for (; c + B <= cols; c += B) {
    const float thr = v[k - 1];
    const bool thr_nan = std::isnan(thr);
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int64_t j = 0; j < B; ++j) any |= (a[c + j] > thr) | ((a[c + j] != a[c + j]) & !thr_nan);
    if (any)
      for (int64_t j = 0; j < B; ++j) push(c + j);
  }
  for (; c < cols; ++c) push(c);
}

}  // namespace

void topk_rows(int32_t* idx, float* val, const float* x, int64_t rows, int64_t cols, int k) {
  MOE_ASSERT(k >= 0 && k <= cols);
  if (k == 0) return;
  if (rows == 1) {  // product-key retrieval calls this per query from inside a parallel region
    topk_row(idx, val, x, cols, k);
    return;
  }
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 15))
  for (int64_t r = 0; r < rows; ++r) topk_row(idx + r * k, val + r * k, x + r * cols, cols, k);
}

}  // namespace moe::kernels
