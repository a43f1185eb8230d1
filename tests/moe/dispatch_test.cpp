// Dispatch: the counting sort groups slots by expert, stably, and combine/gather and their
// backwards match naive loops.
#include "moe/dispatch.h"

#include <gtest/gtest.h>

#include "../test_util.h"

namespace moe {
namespace {

TEST(Dispatch, CountingSortIsStableAndComplete) {
  RoutingPlan p;
  p.n_tok = 5, p.k = 2, p.n_expert = 3;
  p.expert = {2, 0, 0, 1, 2, 1, 0, -1, 1, 2};  // slot 7 dropped
  p.weight.assign(10, 0.5f);
  Dispatch d;
  d.build(p);
  EXPECT_EQ(d.offsets, (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(d.slot_of_row, (std::vector<int32_t>{1, 2, 6, 3, 5, 8, 0, 4, 9}));
  EXPECT_EQ(d.row_of_slot[7], -1);
  for (int r = 0; r < 9; ++r) EXPECT_EQ(d.row_of_slot[d.slot_of_row[r]], r);
}

TEST(Dispatch, CombineAndBackwardsMatchNaive) {
  Rng rng(3);
  RoutingPlan p;
  p.n_tok = 7, p.k = 2, p.n_expert = 4;
  for (int s = 0; s < 14; ++s) {
    p.expert.push_back(int32_t(rng.below(4)));
    p.weight.push_back(float(rng.uniform()));
  }
  p.expert[3] = -1;
  const int d = 5;
  Dispatch ds;
  ds.build(p);
  const int64_t M = ds.rows();
  Tensor x({7, d}), xs({M, d}), ys({M, d}), y({7, d}), dy({7, d}), dys({M, d}), dx({7, d});
  test::fill_normal(x, rng);
  test::fill_normal(ys, rng);
  test::fill_normal(dy, rng);
  ds.gather(xs.data(), x.data(), d);
  for (int64_t r = 0; r < M; ++r)
    for (int i = 0; i < d; ++i) EXPECT_EQ(xs[r * d + i], x[(ds.slot_of_row[r] / 2) * d + i]);
  ds.combine(y.data(), ys.data(), p, d);
  std::vector<float> dw(14);
  ds.combine_backward(dys.data(), dw.data(), dy.data(), ys.data(), p, d);
  for (int t = 0; t < 7; ++t)
    for (int i = 0; i < d; ++i) {
      double ref = 0;
      for (int j = 0; j < 2; ++j) {
        const int r = ds.row_of_slot[t * 2 + j];
        if (r >= 0) ref += p.weight[t * 2 + j] * ys[r * d + i];
      }
      EXPECT_NEAR(y[t * d + i], ref, 1e-5);
    }
  for (int s = 0; s < 14; ++s) {
    const int r = ds.row_of_slot[s];
    double ref = 0;
    if (r >= 0)
      for (int i = 0; i < d; ++i) ref += double(ys[r * d + i]) * dy[(s / 2) * d + i];
    EXPECT_NEAR(dw[s], ref, 1e-5);
  }
  ds.gather_backward(dx.data(), dys.data(), 7, d);
  for (int t = 0; t < 7; ++t)
    for (int i = 0; i < d; ++i) {
      double ref = 0;
      for (int j = 0; j < 2; ++j)
        if (p.expert[t * 2 + j] >= 0) ref += p.weight[t * 2 + j] * dy[t * d + i];
      EXPECT_NEAR(dx[t * d + i], ref, 1e-5);
    }
}

}  // namespace
}  // namespace moe
