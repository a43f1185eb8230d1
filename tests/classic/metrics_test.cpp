// Accuracy, MSE and R^2 by hand.
#include "classic/metrics.h"

#include <gtest/gtest.h>

namespace moe::classic {
namespace {

TEST(ClassicMetrics, ByHand) {
  Mat P(3, 2), Y(3, 2);
  P << 0.9, 0.1, 0.4, 0.6, 0.7, 0.3;
  Y << 1, 0, 1, 0, 1, 0;
  EXPECT_DOUBLE_EQ(accuracy(P, Y), 2.0 / 3.0);
  Mat p(4, 1), y(4, 1);
  p << 1, 2, 3, 5;
  y << 1, 2, 3, 4;
  EXPECT_DOUBLE_EQ(mean_squared_error(p, y), 0.25);
  EXPECT_DOUBLE_EQ(r_squared(p, y), 1.0 - 0.25 / 1.25);  // variance of 1..4 is 1.25
  EXPECT_DOUBLE_EQ(r_squared(y, Mat::Constant(4, 1, 2.0)), 0.0);
}

}  // namespace
}  // namespace moe::classic
