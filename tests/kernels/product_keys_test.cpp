// Product-key top-k against the brute-force top-k over all n_sub^2 sums.
#include "kernels/product_keys.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "../test_util.h"

namespace moe {
namespace {

void expect_same(int64_t n_sub, int k, const std::vector<float>& s1, const std::vector<float>& s2, const std::string& what) {
  std::vector<int32_t> ids(k), ids_ref(k);
  std::vector<float> sc(k), sc_ref(k);
  kernels::ProductKeyScratch scratch;
  kernels::product_key_topk(ids.data(), sc.data(), s1.data(), s2.data(), n_sub, k, scratch);
  kernels::product_key_topk_brute(ids_ref.data(), sc_ref.data(), s1.data(), s2.data(), n_sub, k);
  ASSERT_EQ(ids, ids_ref) << what;
  ASSERT_EQ(sc, sc_ref) << what;
  for (int i = 0; i < k; ++i) {  // ids are global: i * n_sub + j with score s1[i] + s2[j]
    ASSERT_GE(ids[i], 0);
    ASSERT_LT(ids[i], n_sub * n_sub);
    EXPECT_EQ(sc[i], float(double(s1[ids[i] / n_sub]) + s2[ids[i] % n_sub])) << what;
  }
}

TEST(ProductKeys, EqualsBruteForceOnRandomQueries) {
  Rng rng(11);
  int64_t far_ids = 0;
  for (int64_t n_sub : {4, 16, 64, 128})
    for (int k : {1, 2, 3, 8, 16, 32}) {
      if (k > n_sub) continue;
      std::vector<float> s1(n_sub), s2(n_sub);
      for (int q = 0; q < 300; ++q) {
        test::fill_normal(s1.data(), n_sub, rng);
        test::fill_normal(s2.data(), n_sub, rng);
        expect_same(n_sub, k, s1, s2, "n_sub " + std::to_string(n_sub) + " k " + std::to_string(k));
        std::vector<int32_t> ids(k);
        std::vector<float> sc(k);
        kernels::ProductKeyScratch scratch;
        kernels::product_key_topk(ids.data(), sc.data(), s1.data(), s2.data(), n_sub, k, scratch);
        for (int32_t id : ids) far_ids += id >= k * k;
      }
    }
  EXPECT_GT(far_ids, 1000);  // most ids lie beyond the k^2 candidate positions
}

TEST(ProductKeys, TiesGoToTheLowerId) {
  Rng rng(3);
  for (int q = 0; q < 500; ++q) {
    const int64_t n_sub = 4 + int64_t(rng.below(30));
    const int k = 1 + int(rng.below(uint64_t(n_sub)));
    std::vector<float> s1(n_sub), s2(n_sub);
    for (auto& v : s1) v = float(rng.below(3));  // many exact ties
    for (auto& v : s2) v = float(rng.below(3)) * 0.5f;
    expect_same(n_sub, k, s1, s2, "tie case " + std::to_string(q));
  }
  // All equal: ids 0..k-1 in order.
  std::vector<float> z(8, 1.0f);
  std::vector<int32_t> ids(5);
  std::vector<float> sc(5);
  kernels::ProductKeyScratch scratch;
  kernels::product_key_topk(ids.data(), sc.data(), z.data(), z.data(), 8, 5, scratch);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 2, 3, 4}));
}

TEST(ProductKeys, NearTiesAcrossHalvesStayExact) {
  // Halves that differ by less than a float ulp of their sum: compared as exact double sums.
  std::vector<float> s1 = {1.0f, std::nextafter(1.0f, 2.0f), 0.0f, -1.0f};
  std::vector<float> s2 = {1e8f, 1e8f, 0.0f, -5.0f};
  for (int k = 1; k <= 4; ++k) expect_same(4, k, s1, s2, "near ties k=" + std::to_string(k));
}

// product_key_search (sub-key GEMMs + top-k, strided rows) against naive dot products of every full
// key [K1_i, K2_j] with the query, top-k by sorting; the scores agree to float rounding, so the
// reference ranks in double and the test skips queries whose k-th and (k+1)-th scores nearly tie.
TEST(ProductKeys, SearchEqualsNaiveFullKeyScoring) {
  Rng rng(5);
  const int64_t n_sub = 32, nb = 40, ld_out = 7;
  const int half = 8, k = 5, ldq = 2 * half + 3;  // strided queries and outputs, as the router uses them
  std::vector<float> q(nb * ldq), k1(n_sub * half), k2(n_sub * half), sub(2 * nb * n_sub);
  test::fill_normal(q.data(), int64_t(q.size()), rng);
  test::fill_normal(k1.data(), int64_t(k1.size()), rng);
  test::fill_normal(k2.data(), int64_t(k2.size()), rng);
  std::vector<int32_t> ids(nb * ld_out, -1);
  std::vector<float> sc(nb * ld_out);
  kernels::ProductKeyScratch scratch;
  kernels::product_key_search(ids.data(), sc.data(), ld_out, q.data(), ldq, k1.data(), k2.data(), nb, n_sub, half, k,
                              sub.data(), scratch);
  int checked = 0;
  for (int64_t t = 0; t < nb; ++t) {
    std::vector<std::pair<double, int32_t>> all;
    for (int64_t i = 0; i < n_sub; ++i)
      for (int64_t j = 0; j < n_sub; ++j) {
        double s = 0;
        for (int c = 0; c < half; ++c) s += double(q[t * ldq + c]) * k1[i * half + c] + double(q[t * ldq + half + c]) * k2[j * half + c];
        all.push_back({-s, int32_t(i * n_sub + j)});
      }
    std::sort(all.begin(), all.end());
    if (-all[k - 1].first - -all[k].first < 1e-4) continue;  // a near tie at the cut: rounding may flip it
    ++checked;
    for (int r = 0; r < k; ++r) {
      EXPECT_EQ(ids[t * ld_out + r], all[r].second) << "query " << t << " rank " << r;
      EXPECT_NEAR(sc[t * ld_out + r], -all[r].first, 1e-4) << "query " << t << " rank " << r;
    }
  }
  EXPECT_GT(checked, nb / 2);
}

}  // namespace
}  // namespace moe
