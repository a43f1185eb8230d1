// The classic mixture trained by EM: the penalised log-likelihood never decreases (every iteration,
// random problems, both tasks), and on a piecewise-linear problem of 4 regions a mixture of 4
// linear experts finds the regions (Jacobs et al. 1991).
#include "classic/mixture.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include <gtest/gtest.h>

#include "../test_util.h"
#include "core/error.h"
#include "core/rng.h"

namespace moe::classic {
namespace {

// From a random start (seed), `iterations` EM iterations, each checked against the one before.
void expect_em_never_decreases(Mixture& m, const Mat& X, const Mat& Y, uint64_t seed, int iterations) {
  m.initialize(X, Y, seed);
  double last = m.objective(X, Y);
  for (int it = 0; it < iterations; ++it) {
    const double now = m.em_iteration(X, Y);
    EXPECT_GE(now, last - 1e-9 * std::abs(last)) << "seed " << seed << " iteration " << it;
    last = now;
  }
}

TEST(MixtureEM, NeverDecreasesTheObjectiveOnRandomRegressionProblems) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    Rng rng(seed);
    const int64_t n = 80, d = 1 + int64_t(seed % 3);
    Mat X(n, d), Y(n, 1);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < d; ++j) X(i, j) = rng.normal();
      Y(i, 0) = std::sin(3 * X(i, 0)) + 0.2 * rng.normal();
    }
    Mixture m(d, 1, {Task::regression, {"linear", "linear", "linear"}, {{"l2", 1e-2}}, 1e-2, seed});
    expect_em_never_decreases(m, X, Y, seed, 40);
  }
}

TEST(MixtureEM, NeverDecreasesTheObjectiveOnRandomClassificationProblems) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    Rng rng(seed + 100);
    const int64_t n = 90, d = 2, K = 3;
    Mat X(n, d), Y = Mat::Zero(n, K);
    for (int64_t i = 0; i < n; ++i) {
      X(i, 0) = rng.normal(), X(i, 1) = rng.normal();
      const double r = X(i, 0) * X(i, 0) + X(i, 1) * X(i, 1) + 0.3 * rng.normal();  // rings: not linear
      Y(i, r < 1 ? 0 : (r < 2.5 ? 1 : 2)) = 1;
    }
    Mixture m(d, K, {Task::classification, {"logistic", "logistic", "logistic", "logistic"}, {{"l2", 1e-2}}, 1e-2, seed});
    expect_em_never_decreases(m, X, Y, seed, 25);
  }
}

// y = a(x1) x1 + b(x2) x2 + 0.5 + noise on [-1, 1]^2, the slopes set by the signs: four linear
// pieces, one per quadrant, joined continuously (a jump at a region's edge would put the error of
// any estimate of that edge, not the mixture's, into the test MSE).
struct Quadrants {
  Mat X, Y;
  std::vector<int> region;
};
Quadrants quadrants(int64_t n, double noise, uint64_t seed) {
  Rng rng(seed);
  Quadrants q{Mat(n, 2), Mat(n, 1), std::vector<int>(size_t(n))};
  for (int64_t i = 0; i < n; ++i) {
    const double a = 2 * rng.uniform() - 1, b = 2 * rng.uniform() - 1;
    q.X(i, 0) = a, q.X(i, 1) = b;
    q.Y(i, 0) = (a >= 0 ? 2.0 : -1.0) * a + (b >= 0 ? 1.5 : -2.0) * b + 0.5 + noise * rng.normal();
    q.region[size_t(i)] = (a >= 0 ? 0 : 1) + (b >= 0 ? 0 : 2);
  }
  return q;
}

TEST(MixtureEM, FourLinearExpertsFindFourRegions) {
  const double noise = 0.1;
  const auto train = quadrants(2000, noise, 1), test = quadrants(2000, noise, 2);
  Mixture m(2, 1, {Task::regression, {"linear", "linear", "linear", "linear"}, {{"l2", 1e-6}}, 1e-6, 3});
  const auto history = m.fit_em(train.X, train.Y, {500, 1e-9, 5});
  for (size_t i = 1; i < history.size(); ++i) EXPECT_GE(history[i], history[i - 1] - 1e-9 * std::abs(history[i - 1]));
  // Gate accuracy: each true region mapped to the expert the gate prefers most often there.
  const Mat g = m.gate(test.X);
  std::array<std::array<int, 4>, 4> counts{};
  std::vector<int> pick(size_t(test.X.rows()));
  for (int64_t i = 0; i < g.rows(); ++i) {
    Eigen::Index k;
    g.row(i).maxCoeff(&k);
    pick[size_t(i)] = int(k);
    ++counts[size_t(test.region[size_t(i)])][size_t(k)];
  }
  std::array<int, 4> map{};
  for (int r = 0; r < 4; ++r) map[size_t(r)] = int(std::max_element(counts[size_t(r)].begin(), counts[size_t(r)].end()) - counts[size_t(r)].begin());
  std::array<int, 4> sorted = map;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::array<int, 4>{0, 1, 2, 3})) << "two regions share an expert";
  int right = 0;
  for (int64_t i = 0; i < g.rows(); ++i) right += pick[size_t(i)] == map[size_t(test.region[size_t(i)])];
  const double accuracy = double(right) / double(g.rows());
  RecordProperty("gate_accuracy", std::to_string(accuracy));
  EXPECT_GE(accuracy, 0.95);
  const double mse = (m.predict(test.X) - test.Y).squaredNorm() / double(test.X.rows());
  RecordProperty("test_mse_over_noise", std::to_string(mse / (noise * noise)));
  EXPECT_LT(mse, 1.10 * noise * noise) << "accuracy " << accuracy << ", " << history.size() - 1 << " EM iterations";
}

TEST(MixtureEM, BadShapesAndSizesAreClearErrors) {
  EXPECT_THROW(Mixture(2, 1, {Task::regression, {"linear"}, {}, 1e-4, 1}), Error);
  Mixture m(2, 1, {Task::regression, {"linear", "linear"}, {}, 1e-4, 1});
  EXPECT_THROW(m.initialize(Mat(5, 3), Mat(5, 1), 1), Error);
  EXPECT_THROW(m.initialize(Mat(0, 2), Mat(0, 1), 1), Error);
  // Library callers can pass what no CSV would hold: EM then says so instead of keeping nothing.
  Mat X = Mat::Ones(4, 2), Y = Mat::Ones(4, 1);
  X(1, 1) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(test::error_of([&] { m.fit_em(X, Y, {5, 1e-9, 2}); }).find("no finite likelihood"), std::string::npos);
}

}  // namespace
}  // namespace moe::classic
