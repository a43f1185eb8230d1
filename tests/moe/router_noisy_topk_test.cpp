// NoisyTopKRouter: selection and weights, the CV^2 losses by hand, gradients (with fixed noise)
// through the layer, and no noise at evaluation.
#include "moe/router_noisy_topk.h"

#include <gtest/gtest.h>

#include <cmath>

#include "layer_fixture.h"

namespace moe {
namespace {

TEST(NoisyTopKRouter, EvaluationIsNoiselessTopKWithSoftmaxOverKept) {
  NoisyTopKRouter r("g.weight", {.d_model = 3, .n_expert = 3, .k = 2, .importance_coef = 1, .load_coef = 1});
  EXPECT_EQ(r.noise.name, "g_noise.weight");
  r.gate.w.zero();
  for (int e = 0; e < 3; ++e) r.gate.w[e * 3 + e] = 1;  // logits = x
  const float x[] = {1.0f, 3.0f, 2.0f};
  RoutingPlan plan;
  r.forward(plan, x, 1);  // evaluation: no noise
  EXPECT_EQ(plan.expert, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(plan.weight[0], 1 / (1 + std::exp(-1.0)), 1e-6);  // softmax over (3, 2)
  // Importance (0, w0, w1): mean m = 1/3, var = ((1/3)^2 + (w0-1/3)^2 + (w1-1/3)^2) / 3
  const double w0 = plan.weight[0], w1 = plan.weight[1], m = 1.0 / 3;
  const double var = (m * m + (w0 - m) * (w0 - m) + (w1 - m) * (w1 - m)) / 3;
  EXPECT_NEAR(r.importance_loss(), var / (m * m), 1e-5);
  // Load without noise is the count (0, 1, 1): mean 2/3, var 2/9 -> CV^2 = 0.5
  EXPECT_NEAR(r.load_loss(), 0.5, 1e-6);
}

TEST(NoisyTopKRouter, TrainingNoiseChangesPerStepOnly) {
  NoisyTopKRouter r("g.weight", {.d_model = 8, .n_expert = 4, .k = 1, .seed = 3});
  Rng rng(1);
  for (int64_t i = 0; i < r.gate.w.numel(); ++i) r.gate.w[i] = float(rng.normal() * 0.1);
  std::vector<float> x(64 * 8);
  for (auto& v : x) v = float(rng.normal());
  r.set_training(true);
  RoutingPlan a, b, c;
  r.forward(a, x.data(), 64);
  r.forward(b, x.data(), 64);
  EXPECT_EQ(a.expert, b.expert);  // same step: same noise (so finite differences are meaningful)
  r.after_step();
  r.forward(c, x.data(), 64);
  EXPECT_NE(a.expert, c.expert);  // new step: a new draw
}

TEST(NoisyTopKRouter, GradientsThroughTheLayerWithBothLosses) {
  test::Fixture fx(std::make_unique<NoisyTopKRouter>("gate.weight", NoisyTopKRouterConfig{.d_model = 8, .n_expert = 4, .k = 2, .importance_coef = 2.0f, .load_coef = 2.0f, .seed = 5}), 41);
  test::check_grads(fx, 42);
}

}  // namespace
}  // namespace moe
