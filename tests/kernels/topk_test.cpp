// Top-k per row against a stable sort (the reference order: value descending, ties by lower
// column index). Exact comparisons: top-k only selects and copies values.
#include "kernels/topk.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "../test_util.h"
#include "core/error.h"

namespace moe::kernels {
namespace {

// Reference: stable sort of the column indices by value, descending, NaN first (as torch.topk).
std::vector<int32_t> topk_ref(const float* a, int64_t cols, int k) {
  std::vector<int32_t> order(cols);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t i, int32_t j) {
    if (std::isnan(a[i])) return !std::isnan(a[j]);
    return a[i] > a[j];
  });
  order.resize(k);
  return order;
}

void expect_matches_ref(const std::vector<float>& x, int64_t R, int64_t C, int k) {
  std::vector<int32_t> idx(R * k, -7);
  std::vector<float> val(R * k, -7.0f);
  topk_rows(idx.data(), val.data(), x.data(), R, C, k);
  for (int64_t r = 0; r < R; ++r) {
    const auto ref = topk_ref(&x[r * C], C, k);
    for (int j = 0; j < k; ++j) {
      ASSERT_EQ(idx[r * k + j], ref[j]) << "row " << r << " rank " << j << " (C=" << C << " k=" << k << ")";
      const float v = x[r * C + ref[j]];
      if (std::isnan(v))
        EXPECT_TRUE(std::isnan(val[r * k + j]));
      else
        EXPECT_EQ(val[r * k + j], v);
    }
  }
}

TEST(TopK, TiesResolvedToLowerIndex) {
  const float x[] = {1, 5, 3, 5, 2,  // row 0: tie 5 at columns 1 and 3
                     0, 0, 0, 0, 1,  // row 1: four-way tie below the max
                     7, 7, 7, 7, 7}; // row 2: all equal
  int32_t idx[9];
  float val[9];
  topk_rows(idx, val, x, 3, 5, 3);
  EXPECT_EQ(std::vector<int32_t>(idx, idx + 3), (std::vector<int32_t>{1, 3, 2}));
  EXPECT_EQ(std::vector<int32_t>(idx + 3, idx + 6), (std::vector<int32_t>{4, 0, 1}));
  EXPECT_EQ(std::vector<int32_t>(idx + 6, idx + 9), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(std::vector<float>(val, val + 3), (std::vector<float>{5, 5, 3}));
  EXPECT_EQ(std::vector<float>(val + 3, val + 6), (std::vector<float>{1, 0, 0}));
}

TEST(TopK, MatchesStableSortWithManyTies) {
  Rng rng(31);
  for (auto [R, C] : {std::pair<int64_t, int64_t>{50, 16}, {7, 1}, {3, 64}})
    for (int k : {1, 2, 4, 8, 16}) {
      if (k > C) continue;
      std::vector<float> x(R * C);
      for (auto& v : x) v = float(rng.below(6)) - 2.0f;  // values in {-2..3}: many ties
      expect_matches_ref(x, R, C, k);
    }
}

TEST(TopK, MatchesStableSortOnRandomRowsMultiThreaded) {
  Rng rng(32);
  const int64_t R = 512, C = 96;  // large enough for the parallel path
  std::vector<float> x(R * C);
  test::fill_normal(x.data(), R * C, rng);
  expect_matches_ref(x, R, C, 2);
  expect_matches_ref(x, R, C, 6);
}

// Long rows take the block-maximum filter (cols >= 8k): random rows, rows of few distinct values
// (ties at the threshold, and more candidates than the filter keeps: its fallback), -inf blocks
// and a NaN anywhere.
TEST(TopK, LongRowsThroughTheBlockFilter) {
  Rng rng(34);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t C : {128, 257, 1024, 4096})
    for (int k : {1, 3, 16, 40}) {
      if (8 * k > C) continue;
      const int64_t R = 6;
      std::vector<float> x(R * C);
      test::fill_normal(x.data(), R * C, rng);
      for (int64_t c = 0; c < C; ++c) {
        x[1 * C + c] = float(rng.below(3));                 // three values: ties everywhere
        x[2 * C + c] = float(rng.below(200)) / 8.0f;        // some ties
        x[3 * C + c] = c < C / 2 ? -inf : x[3 * C + c];     // a half of -inf
        x[4 * C + c] = 1.0f;                                // all equal: the fallback
      }
      x[5 * C + rng.below(uint64_t(C))] = std::nanf("");    // NaN ranks first
      expect_matches_ref(x, R, C, k);
    }
}

TEST(TopK, KEqualsColsIsAFullStableSort) {
  Rng rng(33);
  const int64_t R = 5, C = 12;
  std::vector<float> x(R * C);
  for (auto& v : x) v = float(rng.below(4));
  expect_matches_ref(x, R, C, int(C));
}

TEST(TopK, InfinitiesAndNaN) {
  // -inf is a value like any other; NaN ranks above every number (torch.topk's order).
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  std::vector<float> x = {-inf, -inf, -1.0f, -inf, inf, 3.0f, nan, 2.0f};
  expect_matches_ref(x, 1, 8, 8);
  expect_matches_ref(x, 2, 4, 3);
}

TEST(TopK, KLargerThanColsIsAnError) {
  const float x[2] = {1, 2};
  int32_t idx[3];
  float val[3];
  EXPECT_THROW(topk_rows(idx, val, x, 1, 2, 3), moe::Error);
}

}  // namespace
}  // namespace moe::kernels
