// Row-wise kernels against naive references and finite differences: softmax, logsumexp, top-k,
// SiLU / SwiGLU, RMSNorm, cross-entropy.
#include <gtest/gtest.h>

#include "kernels/activations.h"
#include "kernels/cross_entropy.h"
#include "kernels/rmsnorm.h"
#include "kernels/softmax.h"
#include "kernels/topk.h"
#include "../test_util.h"
#include "kernels_ref.h"

namespace moe::kernels {
namespace {

TEST(Softmax, MatchesReferenceAndIsStable) {
  Rng rng(1);
  const int64_t R = 9, C = 37;
  std::vector<float> x(R * C), y(R * C), lse(R);
  test::fill_normal(x.data(), x.size(), rng, 3.0f);
  x[5] = 1e4f;  // large logits must not overflow
  x[C + 1] = -1e4f;
  softmax_forward(y.data(), x.data(), R, C);
  logsumexp_rows(lse.data(), x.data(), R, C);
  for (int64_t r = 0; r < R; ++r) {
    auto p = test::softmax_ref(x.data() + r * C, C);
    double s = 0, mx = -1e300;
    for (int64_t c = 0; c < C; ++c) {
      EXPECT_NEAR(y[r * C + c], p[c], 1e-6);
      s += y[r * C + c];
      mx = std::max(mx, double(x[r * C + c]));
    }
    EXPECT_NEAR(s, 1.0, 1e-5);
    double z = 0;
    for (int64_t c = 0; c < C; ++c) z += std::exp(double(x[r * C + c]) - mx);
    EXPECT_NEAR(lse[r], mx + std::log(z), 1e-4 * (1 + std::abs(mx)));
  }
}

TEST(Softmax, BackwardMatchesFiniteDifferences) {
  Rng rng(2);
  const int64_t R = 3, C = 6;
  std::vector<float> x(R * C), y(R * C), r(R * C), dx(R * C);
  test::fill_normal(x.data(), x.size(), rng);
  test::fill_normal(r.data(), r.size(), rng);
  auto loss = [&] {
    softmax_forward(y.data(), x.data(), R, C);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * r[i];
    return s;
  };
  loss();
  softmax_backward(dx.data(), y.data(), r.data(), R, C);
  // float32 central differences, eps 1e-2: rtol 1e-2, atol 1e-3
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_TRUE(test::close(dx[i], test::finite_diff(&x[i], loss, 1e-2f), 1e-2, 1e-3)) << i;
}

TEST(TopK, DescendingWithLowerIndexOnTies) {
  const float x[] = {1, 5, 3, 5, 2, /* row 2 */ 0, 0, 0, 0, 1};
  int32_t idx[6];
  float val[6];
  topk_rows(idx, val, x, 2, 5, 3);
  EXPECT_EQ(std::vector<int32_t>(idx, idx + 3), (std::vector<int32_t>{1, 3, 2}));
  EXPECT_EQ(std::vector<int32_t>(idx + 3, idx + 6), (std::vector<int32_t>{4, 0, 1}));
  EXPECT_EQ(val[0], 5.0f);
  EXPECT_EQ(val[2], 3.0f);
}

TEST(TopK, MatchesStableSortOnRandomRows) {
  Rng rng(3);
  const int64_t R = 50, C = 16;
  const int k = 4;
  std::vector<float> x(R * C);
  for (auto& v : x) v = float(rng.below(6));  // many ties
  std::vector<int32_t> idx(R * k);
  std::vector<float> val(R * k);
  topk_rows(idx.data(), val.data(), x.data(), R, C, k);
  for (int64_t r = 0; r < R; ++r) {
    std::vector<int> order(C);
    for (int c = 0; c < C; ++c) order[c] = c;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return x[r * C + a] > x[r * C + b]; });
    for (int j = 0; j < k; ++j) EXPECT_EQ(idx[r * k + j], order[j]) << r;
  }
}

TEST(Activations, SwiGLUForwardAndBackward) {
  Rng rng(4);
  const int64_t n = 40;
  std::vector<float> g(n), u(n), h(n), dh(n), dg(n), du(n), s(n), ds(n);
  test::fill_normal(g.data(), n, rng, 2.0f);
  test::fill_normal(u.data(), n, rng);
  test::fill_normal(dh.data(), n, rng);
  swiglu_forward(h.data(), g.data(), u.data(), n);
  silu_forward(s.data(), g.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double ref = double(g[i]) / (1 + std::exp(-double(g[i])));
    EXPECT_NEAR(s[i], ref, 1e-6 * (1 + std::abs(ref)));
    EXPECT_NEAR(h[i], ref * u[i], 1e-5 * (1 + std::abs(ref * u[i])));
  }
  swiglu_backward(dg.data(), du.data(), g.data(), u.data(), dh.data(), n);
  silu_backward(ds.data(), g.data(), dh.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    auto f = [&](double a) { return a / (1 + std::exp(-a)); };
    const double e = 1e-4, d = (f(g[i] + e) - f(g[i] - e)) / (2 * e);  // double-precision FD
    EXPECT_NEAR(ds[i], dh[i] * d, 1e-4);
    EXPECT_NEAR(dg[i], dh[i] * u[i] * d, 1e-4);
    EXPECT_NEAR(du[i], dh[i] * f(g[i]), 1e-5);
  }
  // dg may alias dh
  std::vector<float> dh2 = dh;
  swiglu_backward(dh2.data(), du.data(), g.data(), u.data(), dh2.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(dh2[i], dg[i]);
}

TEST(RMSNorm, ForwardAndFiniteDifferences) {
  Rng rng(5);
  const int64_t R = 4, D = 10;
  std::vector<float> x(R * D), w(D), y(R * D), rstd(R), r(R * D), dx(R * D), dw(D, 0.0f);
  test::fill_normal(x.data(), x.size(), rng);
  test::fill_normal(w.data(), D, rng);
  test::fill_normal(r.data(), r.size(), rng);
  const float eps = 1e-5f;
  auto loss = [&] {
    rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), R, D, eps);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * r[i];
    return s;
  };
  loss();
  for (int64_t i = 0; i < R; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < D; ++j) ss += double(x[i * D + j]) * x[i * D + j];
    const double rs = 1 / std::sqrt(ss / D + eps);
    for (int64_t j = 0; j < D; ++j) EXPECT_NEAR(y[i * D + j], x[i * D + j] * rs * w[j], 1e-5);
  }
  rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), R, D);
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_TRUE(test::close(dx[i], test::finite_diff(&x[i], loss, 1e-2f), 2e-2, 2e-3)) << "dx " << i;
  for (int64_t j = 0; j < D; ++j)
    EXPECT_TRUE(test::close(dw[j], test::finite_diff(&w[j], loss, 1e-2f), 2e-2, 2e-3)) << "dw " << j;
}

TEST(CrossEntropy, ValuesIgnoredRowsAndGradient) {
  Rng rng(6);
  const int64_t n = 5, V = 11;
  std::vector<float> logits(n * V), nll(n), d(n * V);
  test::fill_normal(logits.data(), logits.size(), rng, 2.0f);
  logits[3] = 1e4f;  // stable with huge logits
  std::vector<int32_t> t = {3, 0, -1, 10, 4};
  const double total = cross_entropy_forward(nll.data(), logits.data(), t.data(), n, V);
  double ref_total = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (t[i] < 0) {
      EXPECT_EQ(nll[i], 0.0f);
      continue;
    }
    auto p = test::softmax_ref(logits.data() + i * V, V);
    const double ref = -std::log(std::max(p[t[i]], 1e-300));
    EXPECT_NEAR(nll[i], ref, 1e-4 * (1 + ref));
    ref_total += ref;
  }
  EXPECT_NEAR(total, ref_total, 1e-3 * (1 + ref_total));
  logits[3] = 1.0f;
  cross_entropy_backward(d.data(), logits.data(), t.data(), n, V, 0.5f);
  auto loss = [&] {
    return 0.5 * cross_entropy_forward(nll.data(), logits.data(), t.data(), n, V);
  };
  for (int64_t i = 0; i < n * V; ++i)
    EXPECT_TRUE(test::close(d[i], test::finite_diff(&logits[i], loss, 1e-2f), 2e-2, 1e-3)) << i;
  for (int64_t c = 0; c < V; ++c) EXPECT_EQ(d[2 * V + c], 0.0f);  // ignored row
  // In place (dlogits aliases logits) gives the same gradient.
  std::vector<float> inplace = logits;
  cross_entropy_backward(inplace.data(), inplace.data(), t.data(), n, V, 0.5f);
  for (int64_t i = 0; i < n * V; ++i) EXPECT_EQ(inplace[i], d[i]);
}

}  // namespace
}  // namespace moe::kernels
