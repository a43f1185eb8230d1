// GradientGuard: the absolute cap before warm-up, the bound from the median of recent accepted
// gradients after it, NaN, per-client refusal after repeated rejections (and its end), and that one
// client's rejections do not touch another's standing.
#include "net/gradient_guard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

namespace moe::net {
namespace {

TEST(GradientGuard, CapThenMedianBound) {
  GradientGuard g({.factor = 10, .warmup = 4, .max_rms = 1.0, .window = 8, .refuse_after = 100});
  EXPECT_NE(g.check("e", "c", 2.0), "");  // above the cap before warm-up
  for (int i = 0; i < 4; ++i) EXPECT_EQ(g.check("e", "c", 0.001 * (1 + i % 2)), "");
  // median of {1e-3, 2e-3, 1e-3, 2e-3} is 2e-3 (upper middle): bound 2e-2
  EXPECT_EQ(g.check("e", "c", 0.019), "");
  EXPECT_NE(g.check("e", "c", 0.5), "");  // below the cap but far above the experts' gradients
  EXPECT_NE(g.check("e", "c", std::nan("")), "");
  EXPECT_NE(g.check("e", "c", INFINITY), "");
  // Another expert has its own window: still under the cap rule.
  EXPECT_EQ(g.check("f", "c", 0.5), "");
  const auto s = g.stats();
  EXPECT_EQ(s.accepted, 6);
  EXPECT_EQ(s.rejected, 4);
  EXPECT_EQ(s.rejected_by_client.at("c"), 4);
}

TEST(GradientGuard, RepeatedRejectionsRefuseTheClientForAWhile) {
  GradientGuard g({.warmup = 1, .max_rms = 1.0, .refuse_after = 3, .refuse_s = 0.3});
  EXPECT_EQ(g.check("e", "honest", 0.01), "");
  EXPECT_NE(g.check("e", "liar", 1e4), "");
  EXPECT_NE(g.check("e", "liar", 1e4), "");
  EXPECT_EQ(g.refused("liar"), "");  // two in a row: not yet
  g.reject("liar");                  // a non-finite grad_output, caught by the protocol check
  EXPECT_NE(g.refused("liar"), "");
  EXPECT_EQ(g.refused("honest"), "");
  EXPECT_EQ(g.check("e", "honest", 0.012), "");
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(g.refused("liar"), "");  // the refusal ends
  EXPECT_EQ(g.stats().refused_calls, 1);
  // An accepted gradient starts the count over.
  EXPECT_NE(g.check("e", "x", 1e4), "");
  EXPECT_NE(g.check("e", "x", 1e4), "");
  EXPECT_EQ(g.check("e", "x", 0.01), "");
  EXPECT_NE(g.check("e", "x", 1e4), "");
  EXPECT_EQ(g.refused("x"), "");
}

}  // namespace
}  // namespace moe::net
