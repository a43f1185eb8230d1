// Gradient sums and clipping (on every rank alike, alone or under mpirun): the clipping branch that
// scales, computed by hand, and the layout-exact path that sums the ranks' double accumulators and
// rounds them to the float gradients.
#include "dist/gradient_sync.h"

#include <gtest/gtest.h>

#include <cmath>

namespace moe::dist {
namespace {

TEST(GradientSync, ClippingScalesEveryGradientToTheMaximumNorm) {
  Param a("a", {2}), b("b", {1}), frozen("f", {1});
  a.g.data()[0] = 3, a.g.data()[1] = 0, b.g.data()[0] = 4;  // norm 5
  frozen.trainable = false;
  frozen.g.data()[0] = 100;  // not part of the norm, not scaled
  const ParallelLayout L = ParallelLayout::make(Communicator::world(), 1);  // replicated gradients
  const ParamList ps = {&a, &b, &frozen};
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 1.0, L), 5.0);
  const float s = float(1.0 / (5.0 + 1e-6));
  EXPECT_FLOAT_EQ(a.g.data()[0], 3 * s);
  EXPECT_FLOAT_EQ(b.g.data()[0], 4 * s);
  EXPECT_FLOAT_EQ(frozen.g.data()[0], 100.0f);
  // Below the maximum (or with clipping off) nothing changes.
  b.g.data()[0] = 0.5f, a.g.data()[0] = 0;
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 1.0, L), 0.5);
  EXPECT_FLOAT_EQ(b.g.data()[0], 0.5f);
  b.g.data()[0] = 40;
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 0.0, L), 40.0);
  EXPECT_FLOAT_EQ(b.g.data()[0], 40.0f);
}

TEST(GradientSync, ExactAccumulatorsAreSummedOverRanksAndRoundedOnce) {
  const Communicator world = Communicator::world();
  const int W = world.size(), me = world.rank();
  Param p("p", {3});
  // Rank r holds (r + 1) x the values: the sum is W (W + 1) / 2 x them.
  p.g64 = {(me + 1) * (1.0 + 1e-12), (me + 1) * -2.5, (me + 1) / 3.0};
  p.g.data()[0] = 7;  // overwritten: the accumulator holds the whole gradient
  const ParallelLayout L = ParallelLayout::make(world, 1);
  all_reduce_gradients({&p}, L);
  const double k = W * (W + 1) / 2.0;
  EXPECT_EQ(p.g.data()[0], float(k));  // the 1e-12 is below a float's resolution
  EXPECT_EQ(p.g.data()[1], float(-2.5 * k));
  EXPECT_FLOAT_EQ(p.g.data()[2], float(k / 3.0));
  p.zero_grad();
  EXPECT_EQ(p.g64, (std::vector<double>{0, 0, 0}));
}

}  // namespace
}  // namespace moe::dist
