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
void topk_row_scan(int32_t* id, float* v, const float* a, int64_t cols, int k) {
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

// Long rows (product-key retrieval: 2 sqrt(N) sub-key scores per head, up to 1024 each): split
// the row into k blocks; the smallest of the k block maxima, tau, has at least k values >= tau, so
// every value of the top k is >= tau and the scan above needs to see only those (a few times k, in
// column order, which keeps its tie order). Finding tau and the candidates is two vector passes.
void topk_row(int32_t* id, float* v, const float* a, int64_t cols, int k) {
  constexpr int kMaxCand = 512;
  if (cols < 8 * int64_t(k) || k > 64) return topk_row_scan(id, v, a, cols, k);
  // Block maxima in 16 independent lanes (a single running max is a chain of dependent
  // instructions: four cycles a value); NaN is detected on the way.
  constexpr int L = 16;
  float tau = INFINITY;
  int bad = 0;
  for (int b = 0; b < k; ++b) {
    const int64_t c0 = cols * b / k, c1 = cols * (b + 1) / k;
    float lane[L];
    for (int j = 0; j < L; ++j) lane[j] = -INFINITY;
    int64_t c = c0;
    for (; c + L <= c1; c += L)
#pragma omp simd reduction(| : bad)
      for (int j = 0; j < L; ++j) {
        const float x = a[c + j];
        lane[j] = x > lane[j] ? x : lane[j];
        bad |= x != x;
      }
    float m = -INFINITY;
    for (; c < c1; ++c) m = a[c] > m ? a[c] : m, bad |= a[c] != a[c];
    for (int j = 0; j < L; ++j) m = lane[j] > m ? lane[j] : m;
    tau = m < tau ? m : tau;
  }
  if (bad) return topk_row_scan(id, v, a, cols, k);  // NaN ranks first: the plain scan handles it
  // Candidates in column order, written without a branch on the (unpredictable) comparison.
  int32_t cand_id[kMaxCand + 1];
  float cand_v[kMaxCand + 1];
  int n = 0;
  for (int64_t c = 0; c < cols; ++c) {
    cand_id[n] = int32_t(c);
    cand_v[n] = a[c];
    n += a[c] >= tau;
    if (n == kMaxCand) return topk_row_scan(id, v, a, cols, k);  // many ties at tau
  }
  // n >= k here (each block holds a value >= tau), so the first n candidates are all written.
#if defined(__GNUC__) && !defined(__clang__)  // GCC's warning only (clang has no such group)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
  topk_row_scan(id, v, cand_v, n, k);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  for (int i = 0; i < k; ++i) id[i] = cand_id[id[i]];
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
