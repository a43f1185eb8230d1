// The classic mixture trained by EM: the penalised log-likelihood never decreases (every iteration,
// random problems, both tasks), and on a piecewise-linear problem of 4 regions a mixture of 4
// linear experts finds the regions (Jacobs et al. 1991).
#include "classic/mixture.h"
#include "classic/synthetic.h"

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

TEST(MixtureEM, FourLinearExpertsFindFourRegions) {
  const double noise = 0.1;
  const auto train = quadrant_problem(2000, noise, 1), test = quadrant_problem(2000, noise, 2);
  Mixture m(2, 1, {Task::regression, {"linear", "linear", "linear", "linear"}, {{"l2", 1e-6}}, 1e-6, 3});
  const auto history = m.fit_em(train.X, train.Y, {200, 1e-7, 3});
  for (size_t i = 1; i < history.size(); ++i) EXPECT_GE(history[i], history[i - 1] - 1e-9 * std::abs(history[i - 1]));
  const double accuracy = region_accuracy(m.gate(test.X), test.region);
  RecordProperty("gate_accuracy", std::to_string(accuracy));
  EXPECT_GE(accuracy, 0.95);
  const double mse = (m.predict(test.X) - test.Y).squaredNorm() / double(test.X.rows());
  RecordProperty("test_mse_over_noise", std::to_string(mse / (noise * noise)));
  EXPECT_LT(mse, 1.10 * noise * noise) << "accuracy " << accuracy << ", " << history.size() - 1 << " EM iterations";
}

// Jordan & Jacobs (1994): a 2-level tree of gates over 4 linear experts on a problem whose pieces
// nest (x1 first, then x2 at a different place in each half).
TEST(MixtureEM, TwoLevelHierarchyFindsNestedRegions) {
  const double noise = 0.1;
  const auto train = nested_problem(1500, noise, 11), test = nested_problem(2000, noise, 12);
  Mixture m(2, 1, {.task = Task::regression, .kinds = {"linear", "linear", "linear", "linear"}, .expert_options = {{"l2", 1e-6}},
                   .gate_l2 = 1e-6, .seed = 5, .depth = 2});
  EXPECT_EQ(m.branching(), 2);
  const auto history = m.fit_em(train.X, train.Y, {200, 1e-7, 4});
  for (size_t i = 1; i < history.size(); ++i) EXPECT_GE(history[i], history[i - 1] - 1e-9 * std::abs(history[i - 1]));
  const double accuracy = region_accuracy(m.gate(test.X), test.region);
  EXPECT_GE(accuracy, 0.95);
  const double mse = (m.predict(test.X) - test.Y).squaredNorm() / double(test.X.rows());
  EXPECT_LT(mse, 1.10 * noise * noise) << "accuracy " << accuracy;
  // The parameters name each of the 3 gates.
  const auto p = m.parameters();
  EXPECT_TRUE(p.count("gates.0.coef") && p.count("gates.2.coef") && !p.count("gate.coef"));
}

// The same monotonicity with heterogeneous experts (linear, tree, MLP) under gates of gates, with
// the linear softmax gates and with MLP gates.
TEST(MixtureEM, HierarchyOfMixedExpertsNeverDecreasesTheObjective) {
  for (const std::string gate : {"logistic", "mlp"}) {
    Rng rng(77);
    const int64_t n = 120, d = 2;
    Mat X(n, d), Y(n, 1);
    for (int64_t i = 0; i < n; ++i) {
      X(i, 0) = rng.normal(), X(i, 1) = rng.normal();
      Y(i, 0) = std::sin(2 * X(i, 0)) * X(i, 1) + 0.2 * rng.normal();
    }
    Mixture m(d, 1, {.task = Task::regression, .kinds = {"linear", "tree", "mlp", "linear"}, .expert_options = {{"hidden", 4}, {"max_depth", 3}},
                     .gate_l2 = 1e-2, .seed = 2, .depth = 2, .gate_kind = gate, .gate_options = {{"hidden", 3}}});
    expect_em_never_decreases(m, X, Y, 3, 12);
  }
}

// Backpropagation (Adam) on the same 4-region problem reaches the regions too.
TEST(MixtureBackprop, FourLinearExpertsFindFourRegions) {
  const double noise = 0.1;
  const auto train = quadrant_problem(1000, noise, 1), test = quadrant_problem(1000, noise, 2);
  Mixture m(2, 1, {Task::regression, {"linear", "linear", "linear", "linear"}, {{"l2", 1e-6}}, 1e-6, 3});
  m.fit_backprop(train.X, train.Y, {.epochs = 300, .batch_size = 50, .learning_rate = 0.02, .restarts = 3});
  EXPECT_GE(region_accuracy(m.gate(test.X), test.region), 0.95);
  const double mse = (m.predict(test.X) - test.Y).squaredNorm() / double(test.X.rows());
  EXPECT_LT(mse, 1.2 * noise * noise);
}

TEST(MixtureBackprop, RefusesExpertsWithoutGradients) {
  Mixture m(2, 1, {Task::regression, {"linear", "tree"}, {}, 1e-4, 1});
  EXPECT_FALSE(m.differentiable());
  const Mat X = Mat::Random(10, 2), Y = Mat::Random(10, 1);
  EXPECT_NE(test::error_of([&] { m.fit_backprop(X, Y, {}); }).find("expert 1 ('tree') is not differentiable"), std::string::npos);
}

TEST(MixtureEM, BadShapesAndSizesAreClearErrors) {
  EXPECT_THROW(Mixture(2, 1, {Task::regression, {}, {}, 1e-4, 1}), Error);
  EXPECT_THROW(Mixture(2, 1, {.task = Task::regression, .kinds = {"linear", "linear", "linear"}, .depth = 2}), Error);  // not b^2
  EXPECT_THROW(Mixture(2, 1, {.task = Task::regression, .kinds = {"linear"}, .depth = 2}), Error);
  EXPECT_THROW(Mixture(2, 1, {.task = Task::regression, .kinds = {"linear", "linear"}, .gate_kind = "linear"}), Error);  // not a classifier kind
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
