// The linear expert's weighted ridge fit against the closed form solved by hand (naive Gaussian
// elimination of the weighted normal equations), and its noise variance and log-likelihood.
#include "classic/linear_expert.h"

#include <cmath>
#include <numbers>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"

namespace moe::classic {
namespace {

// Solves A x = b by Gaussian elimination with partial pivoting (plain loops, no Eigen).
std::vector<double> solve_naive(std::vector<std::vector<double>> A, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t piv = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::abs(A[r][c]) > std::abs(A[piv][c])) piv = r;
    std::swap(A[c], A[piv]);
    std::swap(b[c], b[piv]);
    for (size_t r = c + 1; r < n; ++r) {
      const double f = A[r][c] / A[c][c];
      for (size_t k = c; k < n; ++k) A[r][k] -= f * A[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= A[i][k] * x[k];
    x[i] = s / A[i][i];
  }
  return x;
}

TEST(LinearExpert, WeightedRidgeMatchesTheNormalEquations) {
  Rng rng(3);
  const int64_t n = 40, d = 3;
  Mat X(n, d), Y(n, 1);
  Vec w(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) X(i, j) = rng.normal();
    Y(i, 0) = 0.5 + 2 * X(i, 0) - X(i, 1) + 0.3 * rng.normal();
    w[i] = rng.uniform() * 2;
  }
  const double l2 = 0.7;
  LinearExpert e(d, 1, {l2, 1e-9});
  e.fit(X, Y, w);  // first fit: variance 1 in the ridge term
  // Reference with variance 1: (Xb' W Xb + l2 I') b = Xb' W y, intercept unpenalised.
  std::vector<std::vector<double>> A(d + 1, std::vector<double>(d + 1, 0.0));
  std::vector<double> rhs(d + 1, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double xb[4] = {1.0, X(i, 0), X(i, 1), X(i, 2)};
    for (int a = 0; a <= d; ++a) {
      rhs[a] += w[i] * xb[a] * Y(i, 0);
      for (int b = 0; b <= d; ++b) A[a][b] += w[i] * xb[a] * xb[b];
    }
  }
  for (int a = 1; a <= d; ++a) A[a][a] += l2;
  const auto ref = solve_naive(A, rhs);
  for (int a = 0; a <= d; ++a) EXPECT_NEAR(e.coefficients()(a, 0), ref[a], 1e-10) << a;
  // The variance is the weighted mean squared residual.
  double ss = 0, sw = 0;
  for (int64_t i = 0; i < n; ++i) {
    double p = ref[0];
    for (int j = 0; j < d; ++j) p += ref[j + 1] * X(i, j);
    ss += w[i] * (Y(i, 0) - p) * (Y(i, 0) - p);
    sw += w[i];
  }
  EXPECT_NEAR(e.variances()[0], ss / sw, 1e-10);
  // And the log-likelihood is the Gaussian's.
  const Vec ll = e.log_likelihood(X, Y);
  const double v = ss / sw;
  for (int64_t i = 0; i < n; i += 7) {
    const double r = Y(i, 0) - e.predict(X.row(i))(0, 0);
    EXPECT_NEAR(ll[i], -0.5 * std::log(2 * std::numbers::pi * v) - r * r / (2 * v), 1e-10);
  }
}

TEST(LinearExpert, ZeroWeightSamplesDoNotCountAndTheFitNeverLowersItsObjective) {
  Rng rng(5);
  const int64_t n = 30;
  Mat X(n, 2), Y(n, 1);
  Vec w(n);
  for (int64_t i = 0; i < n; ++i) {
    X(i, 0) = rng.normal(), X(i, 1) = rng.normal();
    w[i] = i < 20 ? 1.0 : 0.0;
    Y(i, 0) = i < 20 ? 1 + X(i, 0) : 1e6 * rng.normal();  // outliers with no weight
  }
  LinearExpert e(2, 1, {1e-9, 1e-12});
  auto obj = [&] { return w.dot(e.log_likelihood(X, Y)) - e.penalty(); };
  double last = obj();
  for (int it = 0; it < 4; ++it) {
    e.fit(X, Y, w);
    EXPECT_GE(obj(), last - 1e-9);
    last = obj();
  }
  EXPECT_NEAR(e.coefficients()(0, 0), 1.0, 1e-6);
  EXPECT_NEAR(e.coefficients()(1, 0), 1.0, 1e-6);
  EXPECT_NEAR(e.coefficients()(2, 0), 0.0, 1e-6);
}

TEST(LinearExpert, RegistryMakesItAndRefusesClassification) {
  auto e = make_expert("linear", ExpertSpec{Task::regression, 3, 1, {{"l2", 0.1}}});
  EXPECT_EQ(e->kind(), "linear");
  EXPECT_THROW(make_expert("linear", ExpertSpec{Task::classification, 3, 2, {}}), Error);
  EXPECT_THROW(make_expert("linear", ExpertSpec{Task::regression, 3, 1, {{"l2", "big"}}}), Error);
  EXPECT_THROW(make_expert("linear", ExpertSpec{Task::regression, 3, 1, nlohmann::json::array()}), Error);
  EXPECT_THROW(make_expert("linear", ExpertSpec{Task::regression, 3, 1, {{"l2", -1.0}}}), Error);
  EXPECT_EQ(make_expert("linear", ExpertSpec{Task::regression, 3, 1, nullptr})->kind(), "linear");
  try {
    make_expert("forest", ExpertSpec{Task::regression, 3, 1, {}});
    FAIL();
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("unknown expert kind 'forest' (known: linear, logistic, mlp, tree)"), std::string::npos) << err.what();
  }
}

}  // namespace
}  // namespace moe::classic
