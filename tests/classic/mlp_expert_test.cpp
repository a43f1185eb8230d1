// The MLP expert's weighted fit: integer weights act as repeated samples (the same L-BFGS run on
// the same function), a fit never lowers the weighted objective, it learns a nonlinear function a
// linear expert cannot, and its parameters round-trip and are checked on load.
#include "classic/mlp_expert.h"

#include <cmath>

#include <gtest/gtest.h>

#include "classic/linear_expert.h"
#include "core/error.h"
#include "core/rng.h"
#include "weighted_data.h"

namespace moe::classic {
namespace {

double objective(const Expert& e, const Mat& X, const Mat& Y, const Vec& w) { return w.dot(e.log_likelihood(X, Y)) - e.penalty(); }

TEST(MlpExpert, IntegerWeightsActAsRepeatedSamples) {
  const test::RepeatedRows r = test::repeated_rows(2, 30, [](double a, double b) { return std::tanh(a - b); });
  MlpExpert a(Task::regression, 2, 1, {.hidden = 4}, 7), b(Task::regression, 2, 1, {.hidden = 4}, 7);
  a.fit(r.X, r.Y, r.w);
  b.fit(r.Xr, r.Yr, Vec::Ones(r.Xr.rows()));
  EXPECT_LT((a.flat_parameters() - b.flat_parameters()).cwiseAbs().maxCoeff(), 1e-6);
}

TEST(MlpExpert, FitsNeverLowerTheObjectiveAndBeatALinearExpertOnACurve) {
  for (Task task : {Task::regression, Task::classification}) {
    Rng rng(3);
    const int64_t n = 200, m = task == Task::regression ? 1 : 2;
    Mat X(n, 1), Y = Mat::Zero(n, m);
    for (int64_t i = 0; i < n; ++i) {
      X(i, 0) = 3 * rng.normal();
      if (task == Task::regression) Y(i, 0) = std::sin(X(i, 0)) + 0.05 * rng.normal();
      else Y(i, std::abs(X(i, 0)) < 1.5 ? 0 : 1) = 1;  // inside or outside an interval: not linear
    }
    MlpExpert e(task, 1, m, {.hidden = 8, .fit_iterations = 20}, 1);
    for (int round = 0; round < 10; ++round) {
      Vec w(n);
      for (int64_t i = 0; i < n; ++i) w[i] = rng.uniform();
      const double before = objective(e, X, Y, w);
      e.fit(X, Y, w);
      EXPECT_GE(objective(e, X, Y, w), before);
    }
    for (int round = 0; round < 10; ++round) e.fit(X, Y, Vec::Ones(n));
    if (task == Task::regression) {
      LinearExpert lin(1, 1);
      lin.fit(X, Y, Vec::Ones(n));
      const double mse_mlp = (e.predict(X) - Y).squaredNorm() / n, mse_lin = (lin.predict(X) - Y).squaredNorm() / n;
      EXPECT_LT(mse_mlp, 0.2 * mse_lin) << mse_mlp << " vs " << mse_lin;
    } else {
      int64_t right = 0;
      const Mat P = e.predict(X);
      for (int64_t i = 0; i < n; ++i) right += (P(i, 1) > 0.5) == (Y(i, 1) > 0.5);
      EXPECT_GT(double(right) / n, 0.95);
    }
  }
}

TEST(MlpExpert, ParametersRoundTripAndAreChecked) {
  MlpExpert a(Task::regression, 3, 2, {.hidden = 5}, 1), b(Task::regression, 3, 2, {.hidden = 5}, 2);
  b.set_parameters(a.parameters());
  EXPECT_EQ(a.flat_parameters(), b.flat_parameters());
  auto p = a.parameters();
  p.at("w1") = Mat::Zero(3, 4);
  EXPECT_THROW(b.set_parameters(p), Error);
  p = a.parameters();
  p.at("variance")(1, 0) = 0;
  EXPECT_THROW(b.set_parameters(p), Error);
  EXPECT_THROW(MlpExpert(Task::classification, 3, 1, {}, 1), Error);
  EXPECT_THROW(MlpExpert(Task::regression, 3, 1, {.hidden = 0}, 1), Error);
}

}  // namespace
}  // namespace moe::classic
