// Cross-entropy against a double-precision reference: ignored targets, large logits, the
// gradient against the analytic formula and central finite differences, in-place backward.
#include "kernels/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "../test_util.h"
#include "core/error.h"

namespace moe::kernels {
namespace {

// -log softmax(a)[t] and softmax(a) in double.
double nll_ref(const float* a, int64_t V, int32_t t, std::vector<double>* p = nullptr) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t c = 0; c < V; ++c) mx = std::max(mx, double(a[c]));
  double s = 0;
  for (int64_t c = 0; c < V; ++c) s += std::exp(double(a[c]) - mx);
  if (p) {
    p->resize(V);
    for (int64_t c = 0; c < V; ++c) (*p)[c] = std::exp(double(a[c]) - mx) / s;
  }
  return mx + std::log(s) - double(a[t]);
}

// nll within 2e-6 * (1 + nll) (a few float roundings relative to the loss). The total is their sum in double (1e-6 relative). Ignored rows (-1) give 0 and are not counted.
// Includes a shape large enough for the multi-threaded path.
TEST(CrossEntropy, ForwardMatchesReferenceAndIgnoresMinusOne) {
  Rng rng(71);
  for (auto [n, V] : {std::pair<int64_t, int64_t>{5, 11}, {1, 1}, {64, 1000}}) {
    std::vector<float> logits(n * V), nll(n, 123.0f);
    test::fill_normal(logits.data(), n * V, rng, 3.0f);
    std::vector<int32_t> t(n);
    for (int64_t i = 0; i < n; ++i) t[i] = i % 3 == 2 ? -1 : int32_t(rng.below(uint64_t(V)));
    const double total = cross_entropy_forward(nll.data(), logits.data(), t.data(), n, V);
    double ref_total = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (t[i] < 0) {
        EXPECT_EQ(nll[i], 0.0f) << i;
        continue;
      }
      const double ref = nll_ref(&logits[i * V], V, t[i]);
      ASSERT_NEAR(nll[i], ref, 2e-6 * (1 + ref)) << n << "x" << V << " row " << i;
      ref_total += ref;
    }
    double sum_nll = 0;
    for (int64_t i = 0; i < n; ++i) sum_nll += nll[i];
    EXPECT_NEAR(total, sum_nll, 1e-9 * (1 + sum_nll));
    EXPECT_NEAR(total, ref_total, 1e-5 * (1 + ref_total));
  }
}

TEST(CrossEntropy, StableWithLargeLogits) {
  // Logits of +-1e4 neither overflow nor lose the answer to their own rounding: nll within
  // 2e-6 * (1 + nll) as for small logits (all equal: exactly log 4 up to float rounding).
  const int64_t V = 4;
  std::vector<float> logits = {1e4f, 0.0f, -1e4f, 9990.0f,  //
                               1e4f, 1e4f, 1e4f, 1e4f,      //
                               -1e4f, -1e4f, -9999.0f, -1e4f};
  std::vector<int32_t> t = {3, 2, 0};
  std::vector<float> nll(3), d(logits.size());
  cross_entropy_forward(nll.data(), logits.data(), t.data(), 3, V);
  for (int64_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(std::isfinite(nll[i]));
    const double ref = nll_ref(&logits[i * V], V, t[i]);
    EXPECT_NEAR(nll[i], ref, 2e-6 * (1 + ref)) << i;
  }
  EXPECT_NEAR(nll[1], std::log(4.0), 1e-6);
  cross_entropy_backward(d.data(), logits.data(), t.data(), 3, V, 1.0f);
  for (int64_t i = 0; i < 3; ++i) {
    std::vector<double> p;
    nll_ref(&logits[i * V], V, t[i], &p);
    for (int64_t c = 0; c < V; ++c)
      EXPECT_NEAR(d[i * V + c], p[c] - (c == t[i] ? 1.0 : 0.0), 1e-6) << i << "," << c;
  }
}

// dlogits = scale * (softmax - onehot): against double within 1e-6 * scale; zero rows for ignored
// targets; each counted row sums to ~0; in place (dlogits aliases logits) bit-identical.
TEST(CrossEntropy, BackwardMatchesReferenceAndWorksInPlace) {
  Rng rng(72);
  const int64_t n = 40, V = 1001;  // large enough for the multi-threaded path
  const float scale = 0.25f;
  std::vector<float> logits(n * V), d(n * V, 9.0f);
  test::fill_normal(logits.data(), n * V, rng, 2.0f);
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = i % 5 == 1 ? -1 : int32_t(rng.below(uint64_t(V)));
  cross_entropy_backward(d.data(), logits.data(), t.data(), n, V, scale);
  for (int64_t i = 0; i < n; ++i) {
    double row = 0;
    if (t[i] < 0) {
      for (int64_t c = 0; c < V; ++c) ASSERT_EQ(d[i * V + c], 0.0f) << "ignored row " << i;
      continue;
    }
    std::vector<double> p;
    nll_ref(&logits[i * V], V, t[i], &p);
    for (int64_t c = 0; c < V; ++c) {
      ASSERT_NEAR(d[i * V + c], scale * (p[c] - (c == t[i] ? 1.0 : 0.0)), 1e-6 * scale) << i << "," << c;
      row += d[i * V + c];
    }
    EXPECT_NEAR(row, 0.0, 1e-5) << i;
  }
  std::vector<float> inplace = logits;
  cross_entropy_backward(inplace.data(), inplace.data(), t.data(), n, V, scale);
  EXPECT_EQ(inplace, d);
}

// Central differences of loss = scale * sum(nll) through the float32 forward: eps 1e-3,
// |analytic - numeric| <= 1e-3 + 1e-2 * max(|analytic|, |numeric|).
TEST(CrossEntropy, BackwardMatchesFiniteDifferences) {
  Rng rng(73);
  const int64_t n = 5, V = 11;
  const float scale = 0.5f;
  std::vector<float> logits(n * V), nll(n), d(n * V);
  test::fill_normal(logits.data(), n * V, rng, 2.0f);
  const std::vector<int32_t> t = {3, 0, -1, 10, 4};
  cross_entropy_backward(d.data(), logits.data(), t.data(), n, V, scale);
  auto loss = [&] { return scale * cross_entropy_forward(nll.data(), logits.data(), t.data(), n, V); };
  for (int64_t i = 0; i < n * V; ++i)
    EXPECT_TRUE(test::close(d[i], test::finite_diff(&logits[i], loss, 1e-3f), 1e-2, 1e-3)) << i;
}

TEST(CrossEntropy, TargetOutOfRangeIsAnError) {
  const float logits[3] = {0, 1, 2};
  const int32_t t = 3;
  float nll, d[3];
  EXPECT_THROW(cross_entropy_forward(&nll, logits, &t, 1, 3), moe::Error);
  EXPECT_THROW(cross_entropy_backward(d, logits, &t, 1, 3, 1.0f), moe::Error);
}

}  // namespace
}  // namespace moe::kernels
