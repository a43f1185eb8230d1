// SiLU and fused SwiGLU against double-precision references; backwards against the analytic
// derivative and central finite differences; aliasing dg == dh.
#include "kernels/activations.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../test_util.h"

namespace moe::kernels {
namespace {

double silu_ref(double a) { return a / (1.0 + std::exp(-a)); }
double dsilu_ref(double a) {
  const double s = 1.0 / (1.0 + std::exp(-a));
  return s * (1.0 + a * (1.0 - s));
}

// Inputs spread over the interesting range plus the saturated tails.
std::vector<float> inputs(int64_t n, Rng& rng) {
  std::vector<float> a(n);
  test::fill_normal(a.data(), n, rng, 4.0f);
  const float tails[] = {0.0f, -0.0f, 1e-6f, -1e-6f, 20.0f, -20.0f, 88.0f, -88.0f, 100.0f, -100.0f, 1e4f, -1e4f};
  for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]) && int64_t(i) < n; ++i) a[i] = tails[i];
  return a;
}

// Forward: silu within 4e-7 relative (exp within ~1 ulp, an add and a division), swiglu within
// 6e-7 (one more rounding).
TEST(Activations, SiluAndSwigluMatchReference) {
  Rng rng(41);
  const int64_t n = 1000;
  const auto g = inputs(n, rng);
  std::vector<float> u(n), s(n), h(n);
  test::fill_normal(u.data(), n, rng);
  silu_forward(s.data(), g.data(), n);
  swiglu_forward(h.data(), g.data(), u.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double ref = silu_ref(g[i]);
    ASSERT_NEAR(s[i], ref, 4e-7 * std::abs(ref) + 1e-30) << "silu(" << g[i] << ")";
    ASSERT_NEAR(h[i], ref * u[i], 6e-7 * std::abs(ref * u[i]) + 1e-30) << "swiglu " << i;
  }
}

// Backward against the analytic derivative in double: 1e-6 relative to |dy| (the derivative is
// bounded by ~1.1).
TEST(Activations, BackwardsMatchAnalyticDerivative) {
  Rng rng(42);
  const int64_t n = 1000;
  const auto g = inputs(n, rng);
  std::vector<float> u(n), dh(n), ds(n), dg(n), du(n);
  test::fill_normal(u.data(), n, rng);
  test::fill_normal(dh.data(), n, rng);
  silu_backward(ds.data(), g.data(), dh.data(), n);
  swiglu_backward(dg.data(), du.data(), g.data(), u.data(), dh.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double d = dsilu_ref(g[i]);
    ASSERT_NEAR(ds[i], dh[i] * d, 1e-6 * std::abs(dh[i])) << "dsilu(" << g[i] << ")";
    ASSERT_NEAR(dg[i], double(dh[i]) * u[i] * d, 1e-6 * std::abs(dh[i] * u[i])) << "dg " << i;
    ASSERT_NEAR(du[i], double(dh[i]) * silu_ref(g[i]), 1e-6 * std::abs(dh[i] * silu_ref(g[i])) + 1e-30)
        << "du " << i;
  }
}

// Central differences of loss = sum(y * r) through the float32 forwards: eps 1e-3,
// |analytic - numeric| <= 1e-3 + 1e-2 * max(|analytic|, |numeric|).
TEST(Activations, BackwardsMatchFiniteDifferences) {
  Rng rng(43);
  const int64_t n = 64;
  std::vector<float> g(n), u(n), r(n), y(n), dg(n), du(n), ds(n);
  test::fill_normal(g.data(), n, rng, 2.0f);
  test::fill_normal(u.data(), n, rng);
  test::fill_normal(r.data(), n, rng);
  auto dot_r = [&] {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(y[i]) * r[i];
    return s;
  };
  auto silu_loss = [&] { silu_forward(y.data(), g.data(), n); return dot_r(); };
  auto swiglu_loss = [&] { swiglu_forward(y.data(), g.data(), u.data(), n); return dot_r(); };
  silu_backward(ds.data(), g.data(), r.data(), n);
  swiglu_backward(dg.data(), du.data(), g.data(), u.data(), r.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_TRUE(test::close(ds[i], test::finite_diff(&g[i], silu_loss, 1e-3f), 1e-2, 1e-3)) << "ds " << i;
    EXPECT_TRUE(test::close(dg[i], test::finite_diff(&g[i], swiglu_loss, 1e-3f), 1e-2, 1e-3)) << "dg " << i;
    EXPECT_TRUE(test::close(du[i], test::finite_diff(&u[i], swiglu_loss, 1e-3f), 1e-2, 1e-3)) << "du " << i;
  }
}

TEST(Activations, SwigluBackwardMayWriteDgOverDh) {
  Rng rng(44);
  const int64_t n = 77;
  std::vector<float> g(n), u(n), dh(n), dg(n), du(n), du2(n);
  test::fill_normal(g.data(), n, rng, 2.0f);
  test::fill_normal(u.data(), n, rng);
  test::fill_normal(dh.data(), n, rng);
  swiglu_backward(dg.data(), du.data(), g.data(), u.data(), dh.data(), n);
  swiglu_backward(dh.data(), du2.data(), g.data(), u.data(), dh.data(), n);
  EXPECT_EQ(dh, dg);
  EXPECT_EQ(du2, du);
}

// Large enough for the multi-threaded path; the same tolerances as above.
TEST(Activations, LargeInputsMultiThreaded) {
  Rng rng(45);
  const int64_t n = 200003;
  std::vector<float> g(n), u(n), h(n), dh(n), dg(n), du(n);
  test::fill_normal(g.data(), n, rng, 3.0f);
  test::fill_normal(u.data(), n, rng);
  test::fill_normal(dh.data(), n, rng);
  swiglu_forward(h.data(), g.data(), u.data(), n);
  swiglu_backward(dg.data(), du.data(), g.data(), u.data(), dh.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double s = silu_ref(g[i]);
    ASSERT_NEAR(h[i], s * u[i], 6e-7 * std::abs(s * u[i]) + 1e-30) << i;
    ASSERT_NEAR(dg[i], double(dh[i]) * u[i] * dsilu_ref(g[i]), 1e-6 * std::abs(dh[i] * u[i])) << i;
  }
}

}  // namespace
}  // namespace moe::kernels
