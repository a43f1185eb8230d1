#include "kernels/product_keys.h"

#include <vector>

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/topk.h"

namespace moe::kernels {

namespace {

// Sums are compared in double: the sum of two floats is then exact (unless their exponents differ by
// more than 29), so a sum with a larger half is never rounded into a tie with a smaller one, which
// the exactness argument below relies on.
inline bool better(double sa, int64_t ia, double sb, int64_t ib) { return sa > sb || (sa == sb && ia < ib); }

// Inserts (s, id) into the sorted best-k buffer holding `filled` entries (sums: its exact scores).
inline void insert(int32_t* ids, double* sums, int& filled, int k, double s, int64_t id) {
  int p;
  if (filled < k) {
    p = filled++;
  } else {
    if (!better(s, id, sums[k - 1], ids[k - 1])) return;
    p = k - 1;
  }
  for (; p > 0 && better(s, id, sums[p - 1], ids[p - 1]); --p) {
    sums[p] = sums[p - 1];
    ids[p] = ids[p - 1];
  }
  sums[p] = s;
  ids[p] = int32_t(id);
}

}  // namespace

void product_key_topk(int32_t* ids, float* scores, const float* s1, const float* s2, int64_t n_sub, int k,
                      ProductKeyScratch& sc) {
  MOE_ASSERT(k >= 1 && k <= n_sub && n_sub * n_sub <= (int64_t(1) << 31));
  sc.idx1.resize(k), sc.idx2.resize(k), sc.val1.resize(k), sc.val2.resize(k), sc.sums.resize(k);
  topk_rows(sc.idx1.data(), sc.val1.data(), s1, 1, n_sub, k);  // ties: lower index first
  topk_rows(sc.idx2.data(), sc.val2.data(), s2, 1, n_sub, k);
  // The pair at ranks (p, q) of the two sorted lists is beaten, in the (score, id) order, by every
  // pair at ranks (p' <= p, q' <= q) other than itself: (p+1)(q+1) - 1 pairs. So only pairs with
  // (p+1)(q+1) <= k can be in the top k: about k ln k candidates instead of k^2.
  int filled = 0;
  for (int p = 0; p < k; ++p)
    for (int q = 0; (p + 1) * (q + 1) <= k; ++q)
      insert(ids, sc.sums.data(), filled, k, double(sc.val1[p]) + sc.val2[q], int64_t(sc.idx1[p]) * n_sub + sc.idx2[q]);
  for (int i = 0; i < k; ++i) scores[i] = float(sc.sums[i]);
}

void product_key_search(int32_t* ids, float* scores, int64_t ld_out, const float* q, int64_t ldq, const float* keys1,
                        const float* keys2, int64_t nb, int64_t n_sub, int half, int k, float* sub_scores,
                        ProductKeyScratch& scratch) {
  float* s1 = sub_scores;
  float* s2 = sub_scores + nb * n_sub;
  gemm(false, true, nb, n_sub, half, 1.0f, q, ldq, keys1, half, 0.0f, s1, n_sub);  // [nb, half] x [n_sub, half]^T
  gemm(false, true, nb, n_sub, half, 1.0f, q + half, ldq, keys2, half, 0.0f, s2, n_sub);
  for (int64_t t = 0; t < nb; ++t)
    product_key_topk(ids + t * ld_out, scores + t * ld_out, s1 + t * n_sub, s2 + t * n_sub, n_sub, k, scratch);
}

void product_key_topk_brute(int32_t* ids, float* scores, const float* s1, const float* s2, int64_t n_sub, int k) {
  MOE_ASSERT(k >= 1 && k <= n_sub * n_sub);
  std::vector<double> sums(k);
  int filled = 0;
  for (int64_t i = 0; i < n_sub; ++i)
    for (int64_t j = 0; j < n_sub; ++j) insert(ids, sums.data(), filled, k, double(s1[i]) + s2[j], i * n_sub + j);
  for (int i = 0; i < k; ++i) scores[i] = float(sums[i]);
}

}  // namespace moe::kernels
