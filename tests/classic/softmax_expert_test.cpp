// The softmax (logistic) expert: its gradient against finite differences of its objective, and its
// Newton fit against a brute-force optimiser (plain gradient ascent run for many steps), for
// one-hot and soft (gate-style) targets with sample weights.
#include "classic/softmax_expert.h"

#include <cmath>

#include <gtest/gtest.h>

#include "core/rng.h"

namespace moe::classic {
namespace {

struct Problem {
  Mat X, Y;
  Vec w;
};

Problem make_problem(uint64_t seed, int64_t n, int64_t d, int64_t K, bool soft) {
  Rng rng(seed);
  Problem p{Mat(n, d), Mat::Zero(n, K), Vec(n)};
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) p.X(i, j) = rng.normal();
    p.w[i] = 0.2 + rng.uniform();
    if (soft) {
      for (int64_t c = 0; c < K; ++c) p.Y(i, c) = rng.uniform() + (c == int64_t(i % K) ? 1.0 : 0.0);
      p.Y.row(i) /= p.Y.row(i).sum();
    } else {
      // noisy linear classes, so the optimum is finite
      const double z = p.X(i, 0) - 0.5 * p.X(i, 1) + rng.normal();
      p.Y(i, z < -0.5 ? 0 : (z < 0.5 ? 1 : K - 1)) = 1;
    }
  }
  return p;
}

TEST(SoftmaxExpert, GradientMatchesFiniteDifferences) {
  const auto p = make_problem(1, 25, 3, 4, true);
  SoftmaxExpert e(3, 4, {0.3, 0.01, 25, 1e-9});
  e.randomize(7, 0.5);
  const Mat G = e.gradient(p.X, p.Y, p.w);
  Mat B = e.coefficients();
  const double h = 1e-5;
  for (int64_t i = 0; i < B.size(); ++i) {
    Mat Bp = B, Bm = B;
    Bp.data()[i] += h, Bm.data()[i] -= h;
    e.set_coefficients(Bp);
    const double fp = e.objective(p.X, p.Y, p.w);
    e.set_coefficients(Bm);
    const double fm = e.objective(p.X, p.Y, p.w);
    EXPECT_NEAR(G.data()[i], (fp - fm) / (2 * h), 1e-6 * (1 + std::abs(G.data()[i]))) << i;
  }
}

// Brute force: gradient ascent with a small fixed step for many iterations.
Mat gradient_ascent(SoftmaxExpert e, const Problem& p, int steps, double lr) {
  for (int s = 0; s < steps; ++s) e.set_coefficients(e.coefficients() + lr * e.gradient(p.X, p.Y, p.w));
  return e.coefficients();
}

void check_against_brute_force(bool soft, int64_t K) {
  const auto p = make_problem(soft ? 2 : 3, 60, 2, K, soft);
  SoftmaxExpertConfig cfg{0.5, 0.05, 50, 1e-14};
  SoftmaxExpert newton(2, K, cfg);
  double last = newton.objective(p.X, p.Y, p.w);
  newton.fit(p.X, p.Y, p.w);
  EXPECT_GE(newton.objective(p.X, p.Y, p.w), last);
  EXPECT_LT(newton.gradient(p.X, p.Y, p.w).cwiseAbs().maxCoeff(), 1e-7);
  const Mat ref = gradient_ascent(SoftmaxExpert(2, K, cfg), p, 20000, 0.01);
  EXPECT_LT((newton.coefficients() - ref).cwiseAbs().maxCoeff(), 1e-5) << newton.coefficients() << "\nvs\n" << ref;
}

TEST(SoftmaxExpert, NewtonFitMatchesGradientAscentBinary) { check_against_brute_force(false, 2); }
TEST(SoftmaxExpert, NewtonFitMatchesGradientAscentThreeClasses) { check_against_brute_force(false, 3); }
TEST(SoftmaxExpert, NewtonFitMatchesGradientAscentSoftTargets) { check_against_brute_force(true, 4); }

TEST(SoftmaxExpert, ProbabilitiesAreNormalisedAndLogLikelihoodIsTheirLog) {
  const auto p = make_problem(4, 10, 3, 3, false);
  SoftmaxExpert e(3, 3);
  e.randomize(2, 1.0);
  const Mat P = e.predict(p.X);
  const Vec ll = e.log_likelihood(p.X, p.Y);
  for (int64_t i = 0; i < P.rows(); ++i) {
    EXPECT_NEAR(P.row(i).sum(), 1.0, 1e-12);
    int64_t c;
    p.Y.row(i).maxCoeff(&c);
    EXPECT_NEAR(ll[i], std::log(P(i, c)), 1e-12);
  }
}

}  // namespace
}  // namespace moe::classic
