#pragma once
// A layer's input and parameter gradients against float32 central differences of
// loss = sum(y * r) for a random r, at sampled entries.
#include <gtest/gtest.h>

#include "../test_util.h"

namespace moe::test {

template <class Layer, class Fwd>
void check(Layer& layer, ParamList ps, Fwd fwd, int64_t n, int64_t d, uint64_t seed) {
  Rng rng(seed);
  for (Param* p : ps) test::fill_normal(p->w, rng, 0.4f), p->g.zero();
  Tensor x({n, d}), y({n, d}), r({n, d}), dx({n, d});
  test::fill_normal(x, rng);
  test::fill_normal(r, rng);
  auto loss = [&] {
    fwd(y.data(), x.data());
    double s = 0;
    for (int64_t i = 0; i < y.numel(); ++i) s += double(y[i]) * r[i];
    return s;
  };
  loss();
  layer.backward(dx.data(), r.data());
  const float eps = 1e-2f;
  // float32 central differences on O(1) values: rtol 2e-2, atol 2e-3.
  for (int i = 0; i < 24; ++i) {
    const int64_t j = int64_t(rng.below(x.numel()));
    EXPECT_TRUE(test::close(dx[j], test::finite_diff(&x[j], loss, eps), 2e-2, 2e-3)) << "dx[" << j << "]";
  }
  for (Param* p : ps)
    for (int i = 0; i < 8; ++i) {
      const int64_t j = int64_t(rng.below(p->w.numel()));
      const double num = test::finite_diff(&p->w[j], loss, eps);
      EXPECT_TRUE(test::close(p->g[j], num, 2e-2, 2e-3)) << p->name << "[" << j << "] " << p->g[j] << " vs " << num;
    }
}

}  // namespace moe::test
