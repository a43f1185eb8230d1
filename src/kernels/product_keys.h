#pragma once
// Product-key retrieval (Lample et al. 2019; PEER, He 2024). A product key is the concatenation of
// sub-key i of a first set and sub-key j of a second set, both of n_sub keys; its id is
// i * n_sub + j and a query's score for it is s1[i] + s2[j], with s1, s2 the query halves' scores
// against the two sets. The top-k over all n_sub^2 keys follows exactly from the top-k of each half,
// so retrieval costs O(n_sub + k log k) per query instead of O(n_sub^2).
// Order everywhere: score descending, ties to the lower id.
#include <cstdint>
#include <vector>

namespace moe::kernels {

// Per-thread buffers of product_key_topk, sized on first use (no allocation afterwards).
struct ProductKeyScratch {
  std::vector<int32_t> idx1, idx2;  // [k]
  std::vector<float> val1, val2;    // [k]
  std::vector<double> sums;         // [k]
};

// ids, scores: [k] global key ids and their scores, best first. s1, s2: [n_sub]. k <= n_sub.
void product_key_topk(int32_t* ids, float* scores, const float* s1, const float* s2, int64_t n_sub, int k,
                      ProductKeyScratch& scratch);

// Retrieval for nb queries of one head, single-threaded (callers run it per chunk inside their own
// parallel loop): each query's halves q[:half], q[half:2*half] (row stride ldq) are scored against
// keys1, keys2 [n_sub, half] by two GEMMs into sub_scores [2, nb, n_sub], then product_key_topk.
// ids, scores: row t at ids + t * ld_out, k entries each.
void product_key_search(int32_t* ids, float* scores, int64_t ld_out, const float* q, int64_t ldq, const float* keys1,
                        const float* keys2, int64_t nb, int64_t n_sub, int half, int k, float* sub_scores,
                        ProductKeyScratch& scratch);

// The same result by scoring every one of the n_sub^2 sums (the tests' and benchmark's reference).
void product_key_topk_brute(int32_t* ids, float* scores, const float* s1, const float* s2, int64_t n_sub, int k);

}  // namespace moe::kernels
