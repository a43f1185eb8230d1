// Softmax, its backward and logsumexp against naive double-precision references; the backward
// against central finite differences; stability with large logits; in-place use.
#include "kernels/softmax.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "../test_util.h"

namespace moe::kernels {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<double> softmax_ref(const float* x, int64_t n) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  std::vector<double> p(n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i] = std::exp(double(x[i]) - mx);
  for (auto& v : p) v /= s;
  return p;
}

double logsumexp_ref(const float* x, int64_t n) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - mx);
  return mx + std::log(s);
}

// Probabilities to 1e-6 absolute / 1e-5 relative; rows sum to 1 within 1e-5. Covers a single
// column, odd widths, and a shape large enough for the multi-threaded path.
TEST(Softmax, MatchesReferenceAndRowsSumToOne) {
  Rng rng(21);
  for (auto [R, C] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {9, 37}, {4, 1000}, {300, 129}}) {
    std::vector<float> x(R * C), y(R * C);
    test::fill_normal(x.data(), R * C, rng, 3.0f);
    softmax_forward(y.data(), x.data(), R, C);
    for (int64_t r = 0; r < R; ++r) {
      const auto p = softmax_ref(&x[r * C], C);
      double s = 0;
      for (int64_t c = 0; c < C; ++c) {
        ASSERT_NEAR(y[r * C + c], p[c], 1e-6 + 1e-5 * p[c]) << R << "x" << C << " " << r << "," << c;
        s += y[r * C + c];
      }
      EXPECT_NEAR(s, 1.0, 1e-5) << "row " << r;
    }
  }
}

TEST(Softmax, StableWithLargeLogitsAndMaskedEntries) {
  // Row 0: one huge logit dominates; row 1: all equal and huge (uniform); row 2: +-1e4 mixed;
  // row 3: -inf entries (masked) get probability 0.
  const int64_t C = 5;
  std::vector<float> x = {1e4f, 0.0f,  -3.0f, 2.0f,  9999.0f,  //
                          1e4f, 1e4f,  1e4f,  1e4f,  1e4f,     //
                          -1e4f, 1e4f, -1e4f, 0.0f,  1e4f,     //
                          -kInf, 1.0f, -kInf, 2.0f,  -kInf};
  std::vector<float> y(x.size());
  softmax_forward(y.data(), x.data(), 4, C);
  for (int64_t r = 0; r < 4; ++r) {
    const auto p = softmax_ref(&x[r * C], C);
    for (int64_t c = 0; c < C; ++c) {
      ASSERT_TRUE(std::isfinite(y[r * C + c]));
      EXPECT_NEAR(y[r * C + c], p[c], 1e-6) << r << "," << c;
    }
  }
  EXPECT_EQ(y[15], 0.0f);
  EXPECT_EQ(y[17], 0.0f);
  EXPECT_EQ(y[19], 0.0f);
}

// A NaN logit poisons its row (as in PyTorch) instead of being silently skipped; other rows are
// unaffected.
TEST(Softmax, NaNPropagatesToItsRowOnly) {
  const int64_t C = 40;
  std::vector<float> x(2 * C, 0.5f), y(2 * C);
  x[C + 17] = std::numeric_limits<float>::quiet_NaN();
  softmax_forward(y.data(), x.data(), 2, C);
  float lse[2];
  logsumexp_rows(lse, x.data(), 2, C);
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_NEAR(y[c], 1.0 / C, 1e-7);
    EXPECT_TRUE(std::isnan(y[C + c])) << c;
  }
  EXPECT_NEAR(lse[0], 0.5 + std::log(double(C)), 1e-6);
  EXPECT_TRUE(std::isnan(lse[1]));
}

TEST(Softmax, InPlaceEqualsOutOfPlace) {
  Rng rng(22);
  const int64_t R = 6, C = 33;
  std::vector<float> x(R * C), y(R * C);
  test::fill_normal(x.data(), R * C, rng, 2.0f);
  softmax_forward(y.data(), x.data(), R, C);
  softmax_forward(x.data(), x.data(), R, C);
  EXPECT_EQ(x, y);
}

// logsumexp within 1e-6 relative to max(1, |lse|) (float rounding of a value of that size).
TEST(LogSumExp, MatchesReferenceAndIsStable) {
  Rng rng(23);
  const int64_t R = 7, C = 41;
  std::vector<float> x(R * C), lse(R);
  test::fill_normal(x.data(), R * C, rng, 3.0f);
  x[3] = 1e4f;          // row 0: would overflow exp
  x[C + 5] = -1e4f;     // row 1: would underflow
  for (int64_t c = 0; c < C; ++c) x[2 * C + c] = -1e4f + float(c);  // row 2: all very negative
  logsumexp_rows(lse.data(), x.data(), R, C);
  for (int64_t r = 0; r < R; ++r) {
    const double ref = logsumexp_ref(&x[r * C], C);
    EXPECT_NEAR(lse[r], ref, 1e-6 * std::max(1.0, std::abs(ref))) << r;
  }
  // All -inf: log(0) = -inf (not NaN).
  const float masked[3] = {-kInf, -kInf, -kInf};
  float l = 0;
  logsumexp_rows(&l, masked, 1, 3);
  EXPECT_EQ(l, -kInf);
}

// Backward of loss = sum(softmax(x) * r) against central differences of the float32 forward:
// eps 1e-3, |analytic - numeric| <= 1e-3 + 1e-2 * max(|analytic|, |numeric|) (float32 noise of
// the loss, ~1e-7, divided by 2 eps is ~1e-4).
TEST(Softmax, BackwardMatchesFiniteDifferencesOfRandomProjection) {
  Rng rng(24);
  const int64_t R = 4, C = 9;
  std::vector<float> x(R * C), y(R * C), r(R * C), dx(R * C);
  test::fill_normal(x.data(), R * C, rng, 2.0f);
  test::fill_normal(r.data(), R * C, rng);
  auto loss = [&] {
    softmax_forward(y.data(), x.data(), R, C);
    double s = 0;
    for (int64_t i = 0; i < R * C; ++i) s += double(y[i]) * r[i];
    return s;
  };
  loss();
  softmax_backward(dx.data(), y.data(), r.data(), R, C);
  for (int64_t i = 0; i < R * C; ++i)
    EXPECT_TRUE(test::close(dx[i], test::finite_diff(&x[i], loss, 1e-3f), 1e-2, 1e-3)) << i;
}

// Against the analytic formula in double (1e-6 absolute), in place (dx aliases dy) identical, and
// on a shape large enough for the multi-threaded path.
TEST(Softmax, BackwardMatchesReferenceAndWorksInPlace) {
  Rng rng(25);
  const int64_t R = 260, C = 131;
  std::vector<float> x(R * C), y(R * C), dy(R * C), dx(R * C);
  test::fill_normal(x.data(), R * C, rng);
  test::fill_normal(dy.data(), R * C, rng);
  softmax_forward(y.data(), x.data(), R, C);
  softmax_backward(dx.data(), y.data(), dy.data(), R, C);
  for (int64_t r = 0; r < R; ++r) {
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += double(y[r * C + c]) * dy[r * C + c];
    for (int64_t c = 0; c < C; ++c) {
      const double ref = double(y[r * C + c]) * (dy[r * C + c] - s);
      ASSERT_NEAR(dx[r * C + c], ref, 1e-6) << r << "," << c;
    }
  }
  std::vector<float> g = dy;
  softmax_backward(g.data(), y.data(), g.data(), R, C);
  EXPECT_EQ(g, dx);
}

}  // namespace
}  // namespace moe::kernels
