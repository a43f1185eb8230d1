// L-BFGS maximises a known function to its optimum and never returns a point worse than its start.
#include "classic/lbfgs.h"

#include <cmath>

#include <gtest/gtest.h>

namespace moe::classic {
namespace {

TEST(Lbfgs, FindsTheMaximumOfRosenbrock) {
  // -Rosenbrock: maximum 0 at (1, 1).
  const Objective f = [](const Vec& t, Vec* g) {
    const double a = 1 - t[0], b = t[1] - t[0] * t[0];
    if (g) *g = Vec{{-(-2 * a - 400 * t[0] * b), -(200 * b)}};
    return -(a * a + 100 * b * b);
  };
  Vec theta{{-1.2, 1.0}};
  const double v = lbfgs_maximize(f, theta, {.max_iterations = 500, .memory = 8, .tolerance = 0});
  EXPECT_NEAR(theta[0], 1, 1e-5);
  EXPECT_NEAR(theta[1], 1, 1e-5);
  EXPECT_GT(v, -1e-10);
}

TEST(Lbfgs, NeverWorseThanTheStart) {
  // A function whose gradient lies (points downhill): no step can be accepted.
  const Objective liar = [](const Vec& t, Vec* g) {
    if (g) *g = t;
    return -t.squaredNorm();
  };
  Vec theta{{0.5, -2.0}};
  const Vec start = theta;
  EXPECT_EQ(lbfgs_maximize(liar, theta), -start.squaredNorm());
  EXPECT_EQ(theta, start);
}

}  // namespace
}  // namespace moe::classic
