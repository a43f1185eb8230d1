// RMSNorm forward against a double-precision reference; backward (dx assigned, dw accumulated)
// against the analytic gradient in double and against central finite differences.
#include "kernels/rmsnorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "../test_util.h"

namespace moe::kernels {
namespace {

struct Ref {
  std::vector<double> y, rstd, dx, dw;
};

// y = x / sqrt(mean(x^2) + eps) * w; dx_j = r (dy_j w_j - x_j r^2 sum_i dy_i w_i x_i / dim);
// dw_i = sum_rows dy_i x_i r.
Ref rmsnorm_ref(const std::vector<float>& x, const std::vector<float>& w,
                const std::vector<float>& dy, int64_t R, int64_t D, double eps) {
  Ref o{std::vector<double>(R * D), std::vector<double>(R), std::vector<double>(R * D),
        std::vector<double>(D, 0.0)};
  for (int64_t r = 0; r < R; ++r) {
    double ss = 0, dot = 0;
    for (int64_t i = 0; i < D; ++i) ss += double(x[r * D + i]) * x[r * D + i];
    const double rs = 1.0 / std::sqrt(ss / double(D) + eps);
    o.rstd[r] = rs;
    for (int64_t i = 0; i < D; ++i) {
      o.y[r * D + i] = x[r * D + i] * rs * w[i];
      dot += double(dy[r * D + i]) * w[i] * x[r * D + i];
      o.dw[i] += double(dy[r * D + i]) * x[r * D + i] * rs;
    }
    for (int64_t i = 0; i < D; ++i)
      o.dx[r * D + i] = rs * (double(dy[r * D + i]) * w[i] - x[r * D + i] * rs * rs * dot / double(D));
  }
  return o;
}

// Against double: y and rstd within 2e-6 relative (+1e-6 absolute) — the float mean of squares
// is accumulated in vector partial sums; dx within 1e-5 absolute, dw within 1e-5 relative to the
// sum of |terms|. Shapes include a single element, odd widths, and one large enough for the
// multi-threaded path with several dw column blocks.
TEST(RMSNorm, ForwardAndBackwardMatchReference) {
  Rng rng(51);
  for (auto [R, D] : {std::pair<int64_t, int64_t>{1, 1}, {4, 10}, {3, 257}, {40, 1000}}) {
    std::vector<float> x(R * D), w(D), dy(R * D), y(R * D), rstd(R), dx(R * D), dw(D);
    test::fill_normal(x.data(), R * D, rng, 2.0f);
    test::fill_normal(w.data(), D, rng);
    test::fill_normal(dy.data(), R * D, rng);
    test::fill_normal(dw.data(), D, rng);
    const std::vector<float> dw0 = dw;
    const float eps = 1e-5f;
    const Ref ref = rmsnorm_ref(x, w, dy, R, D, eps);
    rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), R, D, eps);
    for (int64_t r = 0; r < R; ++r) EXPECT_NEAR(rstd[r], ref.rstd[r], 2e-6 * ref.rstd[r]);
    for (int64_t i = 0; i < R * D; ++i)
      ASSERT_NEAR(y[i], ref.y[i], 1e-6 + 2e-6 * std::abs(ref.y[i])) << R << "x" << D << " " << i;
    rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), R, D);
    for (int64_t i = 0; i < R * D; ++i) ASSERT_NEAR(dx[i], ref.dx[i], 1e-5) << R << "x" << D << " " << i;
    for (int64_t i = 0; i < D; ++i) {
      double scale = 0;
      for (int64_t r = 0; r < R; ++r) scale += std::abs(double(dy[r * D + i]) * x[r * D + i] * ref.rstd[r]);
      ASSERT_NEAR(dw[i], dw0[i] + ref.dw[i], 1e-5 * (1 + scale)) << "dw accumulates, " << i;
    }
  }
}

TEST(RMSNorm, NullRstdAndLargeOrTinyRows) {
  // rstd may be null; a row of huge values (squares still finite in float) does not overflow; an
  // all-zero row gives 0 (eps).
  const int64_t R = 3, D = 4;
  std::vector<float> x = {1e18f, -2e18f, 3e18f, 0.5f, 0, 0, 0, 0, 1, 2, 3, 4}, w(D, 1.0f),
                     y(R * D), y2(R * D), rstd(R);
  rmsnorm_forward(y.data(), nullptr, x.data(), w.data(), R, D, 1e-6f);
  rmsnorm_forward(y2.data(), rstd.data(), x.data(), w.data(), R, D, 1e-6f);
  EXPECT_EQ(y, y2);
  for (float v : y) EXPECT_TRUE(std::isfinite(v));
  for (int64_t i = 0; i < D; ++i) EXPECT_EQ(y[D + i], 0.0f);
  const double rs = 1.0 / std::sqrt(30.0 / 4.0 + 1e-6);  // 1 / sqrt(mean(1, 4, 9, 16) + eps)
  EXPECT_NEAR(y[2 * D + 3], 4 * rs, 1e-6);
  EXPECT_NEAR(y[0], 1e18 / std::sqrt(14e36 / 4), 1e-6);
}

// Central differences of loss = sum(y * r) through the float32 forward: eps 1e-3,
// |analytic - numeric| <= 2e-3 + 1e-2 * max(|analytic|, |numeric|).
TEST(RMSNorm, BackwardMatchesFiniteDifferences) {
  Rng rng(52);
  const int64_t R = 4, D = 10;
  std::vector<float> x(R * D), w(D), y(R * D), rstd(R), r(R * D), dx(R * D), dw(D, 0.0f);
  test::fill_normal(x.data(), R * D, rng);
  test::fill_normal(w.data(), D, rng);
  test::fill_normal(r.data(), R * D, rng);
  const float eps = 1e-5f;
  auto loss = [&] {
    rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), R, D, eps);
    double s = 0;
    for (int64_t i = 0; i < R * D; ++i) s += double(y[i]) * r[i];
    return s;
  };
  loss();
  rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), R, D);
  for (int64_t i = 0; i < R * D; ++i)
    EXPECT_TRUE(test::close(dx[i], test::finite_diff(&x[i], loss, 1e-3f), 1e-2, 2e-3)) << "dx " << i;
  for (int64_t j = 0; j < D; ++j)
    EXPECT_TRUE(test::close(dw[j], test::finite_diff(&w[j], loss, 1e-3f), 1e-2, 2e-3)) << "dw " << j;
}

}  // namespace
}  // namespace moe::kernels
